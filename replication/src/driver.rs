//! [`Driver`]: one loop that drives every Raft group (partition) of a node.
//!
//! Why one loop: a broker holds thousands of partitions, and per-partition threads with one
//! fsync per produce would drown the disk. The driver is a plain synchronous state machine that
//! the caller runs in its own thread (or a `spawn_blocking` loop): feed it incoming messages
//! ([`Driver::receive`]), clock ticks ([`Driver::tick`]) and proposals ([`Driver::propose`]),
//! then call [`Driver::run_turn`]. Each turn:
//!
//! 1. reports to Raft every earlier `Ready` whose sync has completed (in order per group) and
//!    queues the messages that had to wait for it (votes, append acknowledgements);
//! 2. takes every group's `Ready`, stores its new entries (truncating conflicts, state file
//!    first, data appended without sync — see `log_store`), sends the leader's messages at
//!    once (Raft allows a leader to replicate before its own write is durable), applies the
//!    committed entries raft-rs hands out (configuration changes, proposal completion; never
//!    beyond what is durable here), publishes each partition's high watermark (the commit
//!    index, capped at what is durable here) and hands the `Ready` back with
//!    `advance_append_async`;
//! 3. syncs every partition that received data, once (group commit across partitions and
//!    proposals: one fdatasync per dirty partition, whatever the number of produces) —
//!    within the turn, at the start of the next one, or on a persistence thread while the
//!    driver goes on ([`PersistMode`]); a `Ready` that stored no data completes at once unless
//!    an earlier one of its group still waits.
//!
//! Steps 1-3 repeat (a few passes) while they make more work ready, e.g. a leader's commit
//! advancing once its own sync completed. With [`PersistMode::Background`] a follower
//! acknowledges as soon as its sync completes and a leader takes acknowledgements and new
//! proposals during its own sync, so a commit costs one sync on the critical path, not three.
//!
//! Messages for the same peer are coalesced per turn: one [`Transport::send`] per peer and
//! phase, carrying the heartbeats and appends of all groups together. (raft-rs's own
//! `batch_append`, which would also merge the appends of one group into one message, is left
//! off: with it the simulation found a follower acknowledging entries it had not stored,
//! seed 1000001 of the 5-node run; not analysed yet.)
//!
//! No clock and no randomness of its own: the caller decides when a tick happens, and with
//! `max_election_tick = election_tick + 1` raft-rs's randomised election timeout is fixed too,
//! which is what makes the simulation tests deterministic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use raft::{ProgressState, RawNode, StateRole};
use starlog_storage::{validate_batch, LogConfig, PartitionLog, StorageError};

use crate::error::ReplicationError;
use crate::ids::{GroupId, NodeId};
use crate::log_store::{PartitionStore, StoreOptions, SyncJob};
use crate::metrics::DriverMetrics;
use crate::proposal::{Outcome, Proposal};
use crate::raft_logger;
use crate::status::{GroupStatus, ReplicaState, ReplicaStatus, Role};
use crate::transport::{Envelope, Transport};

/// Node-wide Raft settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// This node's id (not 0).
    pub node: NodeId,
    /// Ticks without a leader before a follower campaigns (default 10).
    pub election_tick: usize,
    /// Ticks between leader heartbeats (default 3).
    pub heartbeat_tick: usize,
    /// Upper bound (exclusive) of the randomised election timeout; `None` = `2 * election_tick`.
    /// `Some(election_tick + 1)` makes it deterministic (simulation).
    pub max_election_tick: Option<usize>,
    /// Largest append message (bytes of entries); default 1 MiB.
    pub max_size_per_msg: u64,
    /// Appends in flight per replica; default 256.
    pub max_inflight_msgs: usize,
    /// Pre-vote: a partitioned node does not disrupt the cluster when it comes back.
    pub pre_vote: bool,
    /// A leader that lost contact with a quorum steps down.
    pub check_quorum: bool,
    /// Record synced segment lengths (crash simulation, see `StoreOptions`).
    pub track_synced_lengths: bool,
    /// Leave data syncs to the OS and rely on replication (see `StoreOptions`).
    pub skip_data_sync: bool,
    /// When and where new entries are synced (see [`PersistMode`]).
    pub persist: PersistMode,
}

/// When and where a turn's new entries are synced. In every mode a leader sends its appends
/// before its own sync (Raft allows it), a follower acknowledges only what it has synced, and a
/// proposal resolves only once it is committed *and* synced on the leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PersistMode {
    /// Within the turn: the driver waits for the syncs, then acknowledges and applies.
    #[default]
    Inline,
    /// At the start of the next turn, on the driver's thread. Entries wait for their sync
    /// across a turn boundary as with `Background`, but deterministically (the simulation).
    Deferred,
    /// On a persistence thread, while the driver goes on taking messages and proposals; the
    /// turn after the sync completes sends the acknowledgements. Set a waker
    /// ([`Driver::set_persist_waker`]) so that turn comes at once.
    Background,
}

impl DriverConfig {
    /// Defaults for node `node`.
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            election_tick: 10,
            heartbeat_tick: 3,
            max_election_tick: None,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            pre_vote: true,
            check_quorum: true,
            track_synced_lengths: false,
            skip_data_sync: false,
            persist: PersistMode::Inline,
        }
    }

    fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            min_election_tick: self.election_tick,
            max_election_tick: self.max_election_tick.unwrap_or(2 * self.election_tick),
            applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            pre_vote: self.pre_vote,
            check_quorum: self.check_quorum,
            ..raft::Config::default()
        }
    }
}

/// A partition to replicate on this node.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Group id (assigned by the cluster metadata).
    pub group: GroupId,
    /// Partition directory (`<data_dir>/<topic>-<partition>`).
    pub dir: PathBuf,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Log configuration (its flush policy is replaced: the driver syncs once per turn).
    pub log_config: LogConfig,
    /// Voters when the group is created here for the first time: all initial replicas for a
    /// new group; for a replica joining an existing group, its *current* voters (this node not
    /// among them), after which the leader adds it with a configuration change. (The initial
    /// configuration is not in the Raft log, so a replica cannot learn it by replaying it.)
    /// Ignored when the partition already has Raft state.
    pub bootstrap_voters: Vec<NodeId>,
}

/// Where [`Driver::crash`] stops a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After storing new entries (data written, not synced).
    BeforeSync,
    /// After syncing, before acknowledging or applying anything.
    AfterSync,
}

/// What one turn did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Groups that had a `Ready`.
    pub groups_ready: usize,
    /// Partitions synced (fdatasync calls).
    pub syncs: usize,
    /// Transport sends (frames).
    pub sends: usize,
    /// Raft messages sent.
    pub messages: usize,
}

struct Pending {
    first_index: u64,
    term: u64,
    proposed_at: Instant,
    tx: futures::channel::oneshot::Sender<Outcome>,
}

/// A `Ready` handed back to raft-rs whose persistence is not confirmed yet.
struct Unpersisted {
    /// The `Ready`'s number (for `on_persist_ready`).
    number: u64,
    /// The sync batch that makes it durable.
    batch: u64,
    /// Messages that may only leave once it is durable.
    messages: Vec<Message>,
    /// Its own data sync, if it stored data.
    job: Option<SyncJob>,
    /// The index of the snapshot it installed (applied once it counts as persisted).
    snapshot_index: Option<u64>,
}

struct Group {
    node: RawNode<PartitionStore>,
    pending: BTreeMap<u64, Pending>,
    unpersisted: VecDeque<Unpersisted>,
    high_watermark: Arc<AtomicI64>,
    failed: Option<String>,
    max_batch_bytes: u32,
    /// Ticks this group has seen.
    ticks: u64,
    /// On the leader: the tick at which each replica was last seen active. raft-rs clears its
    /// `recent_active` flags at every quorum check, so a status read just after one would show
    /// healthy replicas as inactive; this remembers them for an election timeout.
    heard: HashMap<NodeId, u64>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("store", self.node.store())
            .field("pending", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

type Outbox = BTreeMap<NodeId, Vec<Envelope>>;

/// Drives every Raft group of one node (see the module docs).
#[derive(Debug)]
pub struct Driver<T: Transport> {
    config: DriverConfig,
    transport: T,
    groups: BTreeMap<GroupId, Group>,
    metrics: Arc<DriverMetrics>,
    /// Id of the next sync batch (one per pass that stored data).
    next_batch: u64,
    /// Every batch up to this one is durable.
    synced_batch: u64,
    /// `PersistMode::Deferred`: batches to sync at the start of the next turn.
    deferred: Vec<SyncBatch>,
    /// `PersistMode::Background`: the persistence thread (started with the first sync).
    flusher: Option<Flusher>,
    waker: WakerSlot,
}

#[derive(Clone, Default)]
struct WakerSlot(Option<Waker>);

impl std::fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(waker)"
        } else {
            "None"
        })
    }
}

/// Called by the persistence thread when a sync batch completed.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Passes of ready handling per turn at most (see `turn_inner`).
const MAX_PASSES_PER_TURN: usize = 4;

impl<T: Transport> Driver<T> {
    /// A driver with no groups yet.
    pub fn new(config: DriverConfig, transport: T) -> Self {
        Self {
            config,
            transport,
            groups: BTreeMap::new(),
            metrics: Arc::default(),
            next_batch: 1,
            synced_batch: 0,
            deferred: Vec::new(),
            flusher: None,
            waker: WakerSlot::default(),
        }
    }

    /// `PersistMode::Background`: called (from the persistence thread) whenever a sync
    /// completes, so the caller runs a turn to send the acknowledgements it released. Set it
    /// before the first turn.
    pub fn set_persist_waker(&mut self, waker: Waker) {
        self.waker = WakerSlot(Some(waker));
    }

    /// Records this driver's stage timings into `metrics` (shared with a metrics page).
    pub fn set_metrics(&mut self, metrics: Arc<DriverMetrics>) {
        self.metrics = metrics;
    }

    /// The stage timings this driver records.
    pub fn metrics(&self) -> &Arc<DriverMetrics> {
        &self.metrics
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node
    }

    /// The transport (tests inspect it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Group ids on this node.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// Opens a partition's store and starts its Raft node.
    pub fn add_group(&mut self, spec: GroupSpec) -> Result<(), ReplicationError> {
        if self.groups.contains_key(&spec.group) {
            return Err(ReplicationError::DuplicateGroup { group: spec.group });
        }
        let max_batch_bytes = spec.log_config.max_batch_bytes;
        let store = PartitionStore::open(
            spec.group,
            &spec.dir,
            &spec.topic,
            spec.partition,
            spec.log_config,
            &StoreOptions {
                bootstrap_voters: spec.bootstrap_voters,
                track_synced_lengths: self.config.track_synced_lengths,
                skip_data_sync: self.config.skip_data_sync,
            },
        )?;
        let applied = store.applied();
        let raft_config = self.config.raft_config(applied);
        let logger = raft_logger::logger(spec.group.0, self.config.node);
        let node = RawNode::new(&raft_config, store, &logger).map_err(|source| {
            ReplicationError::Raft {
                group: spec.group,
                source,
            }
        })?;
        let hw = node.store().high_watermark(node.raft.raft_log.committed);
        tracing::info!(group = %spec.group, topic = %spec.topic, partition = spec.partition, node = self.config.node, term = node.raft.term, commit = node.raft.raft_log.committed, last_index = node.raft.raft_log.last_index(), high_watermark = hw, "raft group started");
        self.groups.insert(
            spec.group,
            Group {
                node,
                pending: BTreeMap::new(),
                unpersisted: VecDeque::new(),
                high_watermark: Arc::new(AtomicI64::new(hw)),
                failed: None,
                max_batch_bytes,
                ticks: 0,
                heard: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Stops a group cleanly (sync, state written); its pending proposals are abandoned.
    pub fn remove_group(&mut self, group: GroupId) -> Result<(), ReplicationError> {
        let mut g = self
            .groups
            .remove(&group)
            .ok_or(ReplicationError::UnknownGroup { group })?;
        g.node.mut_store().close()
    }

    fn group_mut(&mut self, group: GroupId) -> Result<&mut Group, ReplicationError> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or(ReplicationError::UnknownGroup { group })?;
        if let Some(reason) = &g.failed {
            return Err(ReplicationError::GroupFailed {
                group,
                reason: reason.clone(),
            });
        }
        Ok(g)
    }

    /// Proposes `records` (one or more Kafka v2 batches, as a Produce request carries them) on
    /// the leader. Each batch becomes one Raft entry; all are appended together. The returned
    /// [`Proposal`] resolves to the Kafka base offset of the first batch once the last one is
    /// committed by a quorum (see `proposal` for the failure cases). Invalid batches are
    /// refused here, before they can reach any log.
    pub fn propose(
        &mut self,
        group: GroupId,
        records: Bytes,
    ) -> Result<Proposal, ReplicationError> {
        let node_id = self.config.node;
        let g = self.group_mut(group)?;
        if g.node.raft.state != StateRole::Leader {
            return Err(not_leader(group, g.node.raft.leader_id));
        }
        let entries = batch_entries(group, &records, g.max_batch_bytes)?;
        let n = entries.len() as u64;
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = node_id;
        m.entries = entries.into();
        let before = g.node.raft.raft_log.last_index();
        match g.node.step(m) {
            Ok(()) => {}
            Err(raft::Error::ProposalDropped) => {
                return Err(not_leader(group, g.node.raft.leader_id));
            }
            Err(source) => return Err(ReplicationError::Raft { group, source }),
        }
        let last = g.node.raft.raft_log.last_index();
        if last != before + n {
            return Err(not_leader(group, g.node.raft.leader_id));
        }
        let (proposal, tx) = Proposal::new(group);
        g.pending.insert(
            last,
            Pending {
                first_index: before + 1,
                term: g.node.raft.term,
                proposed_at: Instant::now(),
                tx,
            },
        );
        DriverMetrics::add(&self.metrics.proposals, 1);
        Ok(proposal)
    }

    /// This node's term for `group` when it leads it (`None` when it does not, or the group is
    /// unknown or stopped). Cheap: no allocation, for per-produce leadership checks.
    pub fn leader_term(&self, group: GroupId) -> Option<u64> {
        let g = self.groups.get(&group)?;
        (g.failed.is_none() && g.node.raft.state == StateRole::Leader).then_some(g.node.raft.term)
    }

    /// Proposes `records` from any replica: the leader appends them as [`Driver::propose`]
    /// does; a follower forwards them to the leader it knows (raft-rs proposal forwarding).
    /// Nothing reports the outcome: the caller watches the committed log instead (the cluster
    /// metadata group's applier does). Fails when no leader is known.
    pub fn propose_or_forward(
        &mut self,
        group: GroupId,
        records: Bytes,
    ) -> Result<(), ReplicationError> {
        if self.leader_term(group).is_some() {
            // The outcome is read from the committed log, not from the proposal.
            drop(self.propose(group, records)?);
            return Ok(());
        }
        let node_id = self.config.node;
        let g = self.group_mut(group)?;
        let entries = batch_entries(group, &records, g.max_batch_bytes)?;
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = node_id;
        m.entries = entries.into();
        g.node.step(m).map_err(|source| match source {
            raft::Error::ProposalDropped => not_leader(group, g.node.raft.leader_id),
            source => ReplicationError::Raft { group, source },
        })
    }

    /// Proposes a membership change (add or remove a replica, promote a learner) on the leader.
    /// It takes effect when committed and applied; it occupies a Raft index but no Kafka offset.
    pub fn propose_conf_change(
        &mut self,
        group: GroupId,
        change: ConfChangeV2,
    ) -> Result<(), ReplicationError> {
        let g = self.group_mut(group)?;
        if g.node.raft.state != StateRole::Leader {
            return Err(not_leader(group, g.node.raft.leader_id));
        }
        g.node
            .propose_conf_change(Vec::new(), change)
            .map_err(|source| match source {
                raft::Error::ProposalDropped => not_leader(group, g.node.raft.leader_id),
                source => ReplicationError::Raft { group, source },
            })
    }

    /// Moves `group`'s membership one step towards `members`, on the leader only. A member that
    /// is neither voter nor learner is added as a learner; a learner that has caught up (within
    /// [`PROMOTE_LAG_ENTRIES`] of the leader's last index) is promoted to voter; a voter or
    /// learner listed in `removed` is removed, leadership first handed to another voter when
    /// this node is the one to go. Removals of replicas not heard from lately come first, the
    /// others after the additions, so a healthy group never shrinks below its size while
    /// replicas move. One configuration change at a time; call it again (e.g. every tick) until
    /// it returns `None`. Replicas in neither list are left alone, so a node whose view of the
    /// membership is stale (just restarted) never removes anyone by mistake.
    pub fn reconcile_membership(
        &mut self,
        group: GroupId,
        members: &[NodeId],
        removed: &[NodeId],
    ) -> Result<Option<MembershipStep>, ReplicationError> {
        let me = self.config.node;
        let g = self.group_mut(group)?;
        if g.node.raft.state != StateRole::Leader || g.node.raft.has_pending_conf() {
            return Ok(None);
        }
        let cs = g.node.store().conf_state().clone();
        let last = g.node.raft.raft_log.last_index();
        let progress = |id: NodeId| {
            g.node
                .raft
                .prs()
                .get(id)
                .map(|p| (p.matched, p.recent_active))
        };
        let gone = |id: &NodeId| removed.contains(id);
        let dead = |id: &NodeId| *id != me && progress(*id).is_none_or(|(_, active)| !active);
        let step = if let Some(&id) = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .find(|v| gone(v) && dead(v))
        {
            Some((ConfChangeType::RemoveNode, id))
        } else if let Some(&id) = members
            .iter()
            .find(|m| !gone(m) && !cs.voters.contains(m) && !cs.learners.contains(m))
        {
            Some((ConfChangeType::AddLearnerNode, id))
        } else if let Some(&id) = cs.learners.iter().find(|l| {
            !gone(l)
                && progress(**l).is_some_and(|(matched, _)| matched + PROMOTE_LAG_ENTRIES >= last)
        }) {
            Some((ConfChangeType::AddNode, id))
        } else if let Some(&id) = cs.learners.iter().find(|l| gone(l)) {
            Some((ConfChangeType::RemoveNode, id))
        } else {
            cs.voters
                .iter()
                .find(|v| gone(v))
                .map(|&id| (ConfChangeType::RemoveNode, id))
        };
        let Some((kind, id)) = step else {
            return Ok(None);
        };
        if kind == ConfChangeType::RemoveNode && id == me {
            // Hand leadership to the most caught-up voter that stays.
            let next = cs
                .voters
                .iter()
                .filter(|v| **v != me && !gone(v))
                .max_by_key(|v| progress(**v).map_or(0, |(matched, _)| matched))
                .copied();
            let Some(next) = next else {
                return Ok(None);
            };
            g.node.transfer_leader(next);
            return Ok(Some(MembershipStep::TransferLeader(next)));
        }
        propose_simple_change(group, g, kind, id)?;
        Ok(Some(match kind {
            ConfChangeType::AddLearnerNode => MembershipStep::AddLearner(id),
            ConfChangeType::AddNode => MembershipStep::Promote(id),
            _ => MembershipStep::Remove(id),
        }))
    }

    /// `peer` is known to be gone (its listener refuses connections): every group that
    /// follows it stops waiting out the election timeout. Each such follower forgets the
    /// leader (so it grants votes at once instead of honouring the leader's lease), and the
    /// voter with the lowest id other than `peer` campaigns within a tick or two; the others
    /// keep their own timeouts, so the survivors do not split the vote (and still elect one
    /// as usual if that voter is gone too). Only timing changes: the election is an ordinary
    /// (pre-)vote, so a wrong suspicion costs at most one election. Returns how many groups
    /// were affected.
    pub fn suspect_leader(&mut self, peer: NodeId) -> usize {
        let me = self.config.node;
        let mut affected = 0;
        for g in self.groups.values_mut().filter(|g| g.failed.is_none()) {
            let first = g
                .node
                .store()
                .conf_state()
                .voters
                .iter()
                .copied()
                .filter(|&v| v != peer)
                .min();
            let raft = &mut g.node.raft;
            if raft.state == StateRole::Leader || raft.leader_id != peer {
                continue;
            }
            raft.leader_id = raft::INVALID_ID;
            if first == Some(me) {
                let soon = raft.randomized_election_timeout().saturating_sub(1);
                raft.election_elapsed = raft.election_elapsed.max(soon);
            }
            affected += 1;
        }
        affected
    }

    /// Starts an election for `group` on this node now (e.g. to place leaders evenly).
    pub fn campaign(&mut self, group: GroupId) -> Result<(), ReplicationError> {
        let g = self.group_mut(group)?;
        g.node
            .campaign()
            .map_err(|source| ReplicationError::Raft { group, source })
    }

    /// Asks the leader to hand leadership of `group` to `to`.
    pub fn transfer_leader(&mut self, group: GroupId, to: NodeId) -> Result<(), ReplicationError> {
        let g = self.group_mut(group)?;
        g.node.transfer_leader(to);
        Ok(())
    }

    /// Advances every group's logical clock by one tick (heartbeats, election timeouts).
    pub fn tick(&mut self) {
        for g in self.groups.values_mut().filter(|g| g.failed.is_none()) {
            g.ticks += 1;
            if g.node.raft.state == StateRole::Leader {
                // Before the tick: a quorum check in it clears the flags.
                for (&peer, pr) in g.node.raft.prs().iter() {
                    if pr.recent_active {
                        g.heard.insert(peer, g.ticks);
                    }
                }
            } else {
                g.heard.clear();
            }
            g.node.tick();
        }
    }

    /// Hands incoming messages to their groups. Messages for unknown or stopped groups are
    /// dropped (Raft recovers from loss).
    pub fn receive(&mut self, envelopes: Vec<Envelope>) {
        DriverMetrics::add(&self.metrics.messages_received, envelopes.len());
        for env in envelopes {
            let Some(g) = self.groups.get_mut(&env.group) else {
                tracing::debug!(group = %env.group, from = env.message.from, "raft message for an unknown group dropped");
                continue;
            };
            if g.failed.is_some() {
                continue;
            }
            let from = env.message.from;
            let kind = env.message.get_msg_type();
            if let Err(e) = g.node.step(env.message) {
                tracing::debug!(group = %env.group, from, ?kind, error = %e, "raft message rejected");
            }
        }
    }

    /// Runs one turn (see the module docs).
    pub fn run_turn(&mut self) -> TurnStats {
        self.turn(None)
    }

    /// Crash simulation: runs a turn up to `at`, then drops the driver without the rest (no
    /// acknowledgements, no state written), returning for each group the segment lengths known
    /// synced (with `track_synced_lengths`). Whatever lies beyond them may be cut by the caller
    /// to model a torn write. Note that dropping the partition logs still closes them the
    /// normal way; the caller's cut is what models the lost bytes.
    pub fn crash(mut self, at: CrashPoint) -> BTreeMap<GroupId, BTreeMap<PathBuf, u64>> {
        self.turn(Some(at));
        self.groups
            .iter()
            .map(|(id, g)| {
                (
                    *id,
                    g.node
                        .store()
                        .synced_log_lengths()
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Clean shutdown: every group synced and its state written.
    pub fn shutdown(mut self) -> Result<(), ReplicationError> {
        let mut first_err = None;
        for g in self.groups.values_mut() {
            if let Err(e) = g.node.mut_store().close() {
                tracing::warn!(error = %e, "raft group did not close cleanly");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn turn(&mut self, crash: Option<CrashPoint>) -> TurnStats {
        let started = Instant::now();
        let metrics = Arc::clone(&self.metrics);
        let stats = self.turn_inner(crash, &metrics);
        DriverMetrics::add(&metrics.turns, 1);
        if stats.groups_ready > 0 {
            DriverMetrics::add(&metrics.busy_turns, 1);
            metrics.turn.observe(started.elapsed());
        }
        DriverMetrics::add(&metrics.messages_sent, stats.messages);
        stats
    }

    fn turn_inner(&mut self, crash: Option<CrashPoint>, metrics: &DriverMetrics) -> TurnStats {
        let mut stats = TurnStats::default();
        let mut early = Outbox::new();
        let mut late = Outbox::new();
        if self.config.persist == PersistMode::Deferred {
            // What the previous turns stored is synced now, before anything else.
            if crash == Some(CrashPoint::BeforeSync) {
                return stats;
            }
            for (batch, jobs) in std::mem::take(&mut self.deferred) {
                stats.syncs += self.sync_now(jobs, metrics);
                self.synced_batch = batch;
            }
            if crash == Some(CrashPoint::AfterSync) {
                return stats;
            }
        }
        // A few passes: persistence completing or entries being applied make more work ready
        // (a leader's commit advancing, its appends announcing it) that should not wait for the
        // next input or tick.
        for pass in 0..MAX_PASSES_PER_TURN {
            if let Some(flusher) = &self.flusher {
                for done in flusher.done.try_iter() {
                    self.synced_batch = self.synced_batch.max(done.batch);
                    for (id, error) in done.failures {
                        if let Some(g) = self.groups.get_mut(&id) {
                            let e = g.node.store().storage_err(error);
                            fail(id, g, e);
                        }
                    }
                }
            }
            let completed = self.complete_persisted(&mut late);
            let stored = Instant::now();
            let (ready, jobs) = self.handle_readies(&mut early, &mut late, metrics);
            stats.groups_ready += ready;
            if ready > 0 {
                metrics.turn_store.observe(stored.elapsed());
            }
            stats.sends += self.send_all(&mut early, &mut stats.messages);
            if pass == 0 && crash == Some(CrashPoint::BeforeSync) {
                return stats;
            }
            let submitted = !jobs.is_empty();
            if submitted {
                let batch = self.next_batch;
                self.next_batch += 1;
                match self.config.persist {
                    PersistMode::Inline => {
                        stats.syncs += self.sync_now(jobs, metrics);
                        self.synced_batch = batch;
                        if pass == 0 && crash == Some(CrashPoint::AfterSync) {
                            return stats;
                        }
                    }
                    PersistMode::Deferred => self.deferred.push((batch, jobs)),
                    PersistMode::Background => self.submit_background(batch, jobs),
                }
            }
            if ready == 0
                && completed == 0
                && !(submitted && self.config.persist == PersistMode::Inline)
            {
                break;
            }
        }
        let applied = Instant::now();
        stats.sends += self.send_all(&mut late, &mut stats.messages);
        if stats.groups_ready > 0 {
            metrics.turn_apply.observe(applied.elapsed());
        }
        stats
    }

    /// Tells Raft about every stored `Ready` whose sync completed (in order, per group), and
    /// queues the messages that had to wait for it (votes, append acknowledgements). Returns
    /// how many `Ready`s completed.
    fn complete_persisted(&mut self, late: &mut Outbox) -> usize {
        let mut completed = 0;
        let synced = self.synced_batch;
        for (&id, g) in self.groups.iter_mut() {
            while g.unpersisted.front().is_some_and(|u| u.batch <= synced) {
                let Some(u) = g.unpersisted.pop_front() else {
                    break;
                };
                completed += 1;
                if g.failed.is_some() {
                    continue;
                }
                if let Some(job) = &u.job {
                    if let Err(e) = g.node.mut_store().finish_sync(job) {
                        fail(id, g, e);
                        continue;
                    }
                }
                g.node.on_persist_ready(u.number);
                let persisted = g.node.raft.raft_log.persisted;
                g.node.mut_store().mark_persisted(persisted);
                if let Some(index) = u.snapshot_index {
                    g.node.advance_apply_to(index);
                }
                collect(late, id, u.messages);
                publish_high_watermark(id, g);
            }
        }
        completed
    }

    /// Takes every group's `Ready`: stores new entries (unsynced), sends a leader's messages at
    /// once, applies committed entries (never beyond what is durable here: raft-rs hands out
    /// committed entries only up to the persisted index) and hands the `Ready` back with
    /// `advance_append_async`. A `Ready` that stored data waits for its sync (returned as sync
    /// jobs); one that did not completes at once, unless an earlier one of its group is still
    /// waiting (persistence completes in order).
    fn handle_readies(
        &mut self,
        early: &mut Outbox,
        late: &mut Outbox,
        metrics: &DriverMetrics,
    ) -> (usize, Vec<(GroupId, SyncJob)>) {
        let mut ready = 0;
        let mut jobs = Vec::new();
        let batch = self.next_batch;
        for (&id, g) in self.groups.iter_mut() {
            if g.failed.is_some() || !g.node.has_ready() {
                continue;
            }
            ready += 1;
            let mut rd = g.node.ready();
            if let Some(ss) = rd.ss() {
                tracing::info!(group = %id, node = self.config.node, role = ?ss.raft_state, leader = ss.leader_id, term = g.node.raft.term, "raft role changed");
                if ss.raft_state != StateRole::Leader {
                    step_down(id, g, ss.leader_id);
                }
            }
            collect(early, id, rd.take_messages());
            let mut snapshot_index = None;
            if !rd.snapshot().is_empty() {
                if let Err(e) = g.node.mut_store().apply_snapshot(rd.snapshot()) {
                    fail(id, g, e);
                    continue;
                }
                snapshot_index = Some(rd.snapshot().get_metadata().index);
            }
            let entries = rd.take_entries();
            if let Err(e) = g.node.mut_store().append_entries(&entries, rd.hs()) {
                fail(id, g, e);
                continue;
            }
            let committed = rd.take_committed_entries();
            if let Err(e) = apply_committed(id, g, &committed, metrics) {
                fail(id, g, e);
                continue;
            }
            let messages = rd.take_persisted_messages();
            let number = rd.number();
            g.node.advance_append_async(rd);
            if let Some(last) = committed.last() {
                g.node.advance_apply_to(last.index);
            }
            let job = g.node.mut_store().begin_sync();
            if let Some(job) = &job {
                jobs.push((id, job.clone()));
            }
            let waits_for = match (&job, g.unpersisted.back()) {
                (Some(_), _) => Some(batch),
                (None, Some(last)) => Some(last.batch),
                (None, None) => None,
            };
            match waits_for {
                Some(batch) => g.unpersisted.push_back(Unpersisted {
                    number,
                    batch,
                    messages,
                    job,
                    snapshot_index,
                }),
                None => {
                    g.node.on_persist_ready(number);
                    let persisted = g.node.raft.raft_log.persisted;
                    g.node.mut_store().mark_persisted(persisted);
                    if let Some(index) = snapshot_index {
                        g.node.advance_apply_to(index);
                    }
                    collect(late, id, messages);
                }
            }
            publish_high_watermark(id, g);
        }
        (ready, jobs)
    }

    /// Syncs `jobs` on this thread (several partitions in parallel: each waits on the disk, not
    /// on the CPU). Returns how many syncs were made; a failed sync stops its group.
    fn sync_now(&mut self, jobs: Vec<(GroupId, SyncJob)>, metrics: &DriverMetrics) -> usize {
        let started = Instant::now();
        let results = sync_logs(&jobs);
        metrics.turn_sync.observe(started.elapsed());
        DriverMetrics::add(&metrics.syncs, jobs.len());
        for ((id, _), result) in jobs.iter().zip(results) {
            if let Err(e) = result {
                if let Some(g) = self.groups.get_mut(id) {
                    let e = g.node.store().storage_err(e);
                    fail(*id, g, e);
                }
            }
        }
        jobs.len()
    }

    fn submit_background(&mut self, batch: u64, jobs: Vec<(GroupId, SyncJob)>) {
        if self.flusher.is_none() {
            self.flusher = Some(Flusher::start(
                self.config.node,
                Arc::clone(&self.metrics),
                self.waker.0.clone(),
            ));
        }
        if let Some(flusher) = &self.flusher {
            if !flusher.send(batch, jobs) {
                tracing::error!("the raft persistence thread is gone");
            }
        }
    }

    /// True while stored entries wait for a background sync (the caller should run a turn
    /// soon after the waker fires; see [`Driver::set_persist_waker`]).
    pub fn persisting(&self) -> bool {
        self.synced_batch + 1 < self.next_batch
    }

    fn send_all(&mut self, outbox: &mut Outbox, messages: &mut usize) -> usize {
        let mut sends = 0;
        for (to, envs) in std::mem::take(outbox) {
            *messages += envs.len();
            sends += 1;
            self.transport.send(to, envs);
        }
        sends
    }

    /// Persists every group's commit and applied indexes that moved since their last write
    /// (they are written lazily, not on the hot path). Call it every few seconds, as Kafka
    /// checkpoints its high watermarks: after a restart a node then starts from a recent high
    /// watermark instead of waiting for a leader to tell it. Returns how many files it wrote.
    pub fn checkpoint(&mut self) -> usize {
        let mut written = 0;
        for (&id, g) in self.groups.iter_mut() {
            if g.failed.is_some() {
                continue;
            }
            match g.node.mut_store().persist_lazy_state() {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => fail(id, g, e),
            }
        }
        written
    }

    /// Status of one group.
    pub fn status(&self, group: GroupId) -> Option<GroupStatus> {
        let g = self.groups.get(&group)?;
        Some(group_status(group, self.config.node, g))
    }

    /// Status of every group, by group id.
    pub fn statuses(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|(id, g)| group_status(*id, self.config.node, g))
            .collect()
    }

    /// The high watermark of `group` (consumers read below it).
    pub fn high_watermark(&self, group: GroupId) -> Option<i64> {
        self.groups
            .get(&group)
            .map(|g| g.high_watermark.load(Ordering::Acquire))
    }

    /// A shared handle on the high watermark, for fetch paths on other threads.
    pub fn high_watermark_handle(&self, group: GroupId) -> Option<Arc<AtomicI64>> {
        self.groups
            .get(&group)
            .map(|g| Arc::clone(&g.high_watermark))
    }

    /// The partition log of `group` (read it up to the high watermark).
    pub fn log(&self, group: GroupId) -> Option<Arc<PartitionLog>> {
        self.groups
            .get(&group)
            .map(|g| Arc::clone(g.node.store().log()))
    }

    /// The store of `group` (translator, persisted index), read-only.
    pub fn store(&self, group: GroupId) -> Option<&PartitionStore> {
        self.groups.get(&group).map(|g| g.node.store())
    }

    /// Retention for a replicated partition: drops whole segments before the batch holding
    /// `offset` (never anything not yet applied). Use this instead of storage's retention
    /// worker, which would delete batches behind the translator's back.
    pub fn compact(&mut self, group: GroupId, offset: i64) -> Result<i64, ReplicationError> {
        let g = self.group_mut(group)?;
        g.node.mut_store().compact_to_offset(offset)
    }
}

/// A learner this close to the leader's last index (in entries) is promoted to voter.
pub const PROMOTE_LAG_ENTRIES: u64 = 64;

/// What [`Driver::reconcile_membership`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipStep {
    /// Proposed adding this replica as a learner (it catches up without voting).
    AddLearner(NodeId),
    /// Proposed promoting this caught-up learner to voter.
    Promote(NodeId),
    /// Proposed removing this voter.
    Remove(NodeId),
    /// Asked this voter to take over leadership (this node is being removed).
    TransferLeader(NodeId),
}

fn propose_simple_change(
    group: GroupId,
    g: &mut Group,
    kind: ConfChangeType,
    node: NodeId,
) -> Result<(), ReplicationError> {
    let mut cc = ConfChange::default();
    cc.set_change_type(kind);
    cc.node_id = node;
    g.node
        .propose_conf_change(Vec::new(), cc)
        .map_err(|source| match source {
            raft::Error::ProposalDropped => not_leader(group, g.node.raft.leader_id),
            source => ReplicationError::Raft { group, source },
        })
}

/// One Raft entry per Kafka batch of `records`, each validated and bounded.
fn batch_entries(
    group: GroupId,
    records: &Bytes,
    max_batch_bytes: u32,
) -> Result<Vec<Entry>, ReplicationError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let header =
            validate_batch(&records[pos..]).map_err(|fault| ReplicationError::InvalidRecords {
                group,
                batch_index: entries.len(),
                position: pos,
                fault,
            })?;
        let len = header.total_len();
        if len > max_batch_bytes as usize {
            return Err(ReplicationError::BatchTooLarge {
                group,
                batch_index: entries.len(),
                size: len,
                max: max_batch_bytes,
            });
        }
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryNormal);
        e.data = records.slice(pos..pos + len);
        entries.push(e);
        pos += len;
    }
    if entries.is_empty() {
        return Err(ReplicationError::EmptyProposal { group });
    }
    Ok(entries)
}

fn not_leader(group: GroupId, leader_id: u64) -> ReplicationError {
    ReplicationError::NotLeader {
        group,
        leader: (leader_id != raft::INVALID_ID).then_some(leader_id),
    }
}

fn collect(outbox: &mut Outbox, group: GroupId, messages: Vec<Message>) {
    for message in messages {
        outbox
            .entry(message.to)
            .or_default()
            .push(Envelope { group, message });
    }
}

/// Answers every pending proposal of a leader that stepped down with
/// [`ReplicationError::NotLeader`], as Kafka answers the produce requests
/// waiting in a former leader's purgatory: the outcome is unknown (a later
/// leader may still commit the entries), and an idempotent producer
/// resolves it by retrying against the new leader, which recognises a batch
/// it already has. Waiting instead would leave a cut-off former leader's
/// clients hanging until their timeout.
fn step_down(id: GroupId, g: &mut Group, leader_id: u64) {
    for (_, p) in std::mem::take(&mut g.pending) {
        let _ = p.tx.send(Err(not_leader(id, leader_id)));
    }
}

fn fail(id: GroupId, g: &mut Group, error: ReplicationError) {
    tracing::error!(group = %id, error = %error, "raft group stopped; reopen it to recover");
    let reason = error.to_string();
    for (_, p) in std::mem::take(&mut g.pending) {
        let _ = p.tx.send(Err(ReplicationError::GroupFailed {
            group: id,
            reason: reason.clone(),
        }));
    }
    g.failed = Some(reason);
}

fn apply_committed(
    id: GroupId,
    g: &mut Group,
    entries: &[Entry],
    metrics: &DriverMetrics,
) -> Result<(), ReplicationError> {
    for e in entries {
        match e.get_entry_type() {
            EntryType::EntryNormal => {}
            EntryType::EntryConfChange => {
                let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| {
                    ReplicationError::Inconsistent {
                        group: id,
                        topic: g.node.store().log().topic().to_owned(),
                        partition: g.node.store().log().partition(),
                        reason: format!("configuration change at index {}: {err}", e.index),
                    }
                })?;
                let cs = g
                    .node
                    .apply_conf_change(&cc)
                    .map_err(|source| ReplicationError::Raft { group: id, source })?;
                tracing::info!(group = %id, index = e.index, voters = ?cs.voters, learners = ?cs.learners, "configuration changed");
                g.node.mut_store().apply_conf_state(cs, e.index)?;
            }
            EntryType::EntryConfChangeV2 => {
                let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| {
                    ReplicationError::Inconsistent {
                        group: id,
                        topic: g.node.store().log().topic().to_owned(),
                        partition: g.node.store().log().partition(),
                        reason: format!("configuration change at index {}: {err}", e.index),
                    }
                })?;
                let cs = g
                    .node
                    .apply_conf_change(&cc)
                    .map_err(|source| ReplicationError::Raft { group: id, source })?;
                tracing::info!(group = %id, index = e.index, voters = ?cs.voters, learners = ?cs.learners, "configuration changed");
                g.node.mut_store().apply_conf_state(cs, e.index)?;
            }
        }
        g.node.mut_store().set_applied(e.index);
        resolve_pending(id, g, e.index, e.term, metrics);
    }
    Ok(())
}

/// Completes the proposals whose last index is now committed, and fails those that can no
/// longer be: once an entry of term `term` is committed at `index`, every later entry of the
/// committed log has a term of at least `term` (log matching), so a proposal of an older term
/// placed after `index` will never be committed.
fn resolve_pending(id: GroupId, g: &mut Group, index: u64, term: u64, metrics: &DriverMetrics) {
    while let Some(entry) = g.pending.first_entry() {
        if *entry.key() > index {
            break;
        }
        let last = *entry.key();
        let p = entry.remove();
        let committed_term = if last == index {
            Some(term)
        } else {
            g.node.store().translator().term(last)
        };
        let outcome = match committed_term {
            Some(t) if t == p.term => match g.node.store().translator().locate(p.first_index) {
                Some(crate::translator::EntryLocation::Data(span)) => {
                    metrics.commit_latency.observe(p.proposed_at.elapsed());
                    Ok(span.base_offset)
                }
                _ => Err(ReplicationError::Superseded {
                    group: id,
                    index: p.first_index,
                    proposed_term: p.term,
                    committed_term: t,
                }),
            },
            t => Err(ReplicationError::Superseded {
                group: id,
                index: last,
                proposed_term: p.term,
                committed_term: t.unwrap_or(0),
            }),
        };
        let _ = p.tx.send(outcome);
    }
    let doomed: Vec<u64> = g
        .pending
        .iter()
        .filter(|(_, p)| p.term < term)
        .map(|(&k, _)| k)
        .collect();
    for k in doomed {
        if let Some(p) = g.pending.remove(&k) {
            let _ = p.tx.send(Err(ReplicationError::Superseded {
                group: id,
                index: k,
                proposed_term: p.term,
                committed_term: term,
            }));
        }
    }
}

fn publish_high_watermark(id: GroupId, g: &mut Group) {
    let commit = g.node.raft.raft_log.committed;
    let store = g.node.store();
    let hw = store.high_watermark(commit);
    let old = g.high_watermark.load(Ordering::Acquire);
    match next_high_watermark(old, hw, store.log().log_end_offset()) {
        Ok(hw) => g.high_watermark.store(hw, Ordering::Release),
        Err(e) => {
            tracing::error!(group = %id, topic = store.log().topic(), partition = store.log().partition(), old, new = hw, commit, persisted = store.persisted_last_index(), error = %e, "high watermark invariant violated; keeping the old one");
        }
    }
}

/// Why a group's high watermark was not moved (see [`next_high_watermark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum HighWatermarkFault {
    /// It would move backwards.
    #[error("the high watermark would move back from {old} to {new}")]
    Backwards { old: i64, new: i64 },
    /// It would pass the end of the local log.
    #[error("the high watermark {new} would pass the log end {log_end}")]
    BeyondLogEnd { new: i64, log_end: i64 },
}

/// Invariants of a replicated partition's high watermark, checked where it is published: it
/// never moves backwards (the commit index never does), and it never passes the end of the
/// local log (the commit index translated to an offset is capped at what is durable here, see
/// `PartitionStore::high_watermark`, which is never more than is stored). On `Err` the old
/// value stays published, so consumers never see what this replica does not hold. O(1).
fn next_high_watermark(old: i64, new: i64, log_end: i64) -> Result<i64, HighWatermarkFault> {
    if new < old {
        return Err(HighWatermarkFault::Backwards { old, new });
    }
    if new > log_end {
        return Err(HighWatermarkFault::BeyondLogEnd { new, log_end });
    }
    Ok(new)
}

fn group_status(id: GroupId, node: NodeId, g: &Group) -> GroupStatus {
    let raft = &g.node.raft;
    let store = g.node.store();
    let t = store.translator();
    let role = match raft.state {
        StateRole::Follower => Role::Follower,
        StateRole::PreCandidate => Role::PreCandidate,
        StateRole::Candidate => Role::Candidate,
        StateRole::Leader => Role::Leader,
    };
    let last_index = raft.raft_log.last_index();
    let mut replicas = Vec::new();
    if raft.state == StateRole::Leader {
        for (&peer, pr) in raft.prs().iter() {
            let matched_offset =
                (pr.matched + 1 >= t.first_index()).then(|| t.offset_after(pr.matched));
            replicas.push(ReplicaStatus {
                node: peer,
                matched_index: pr.matched,
                next_index: pr.next_idx,
                lag_entries: last_index.saturating_sub(pr.matched),
                matched_offset,
                lag_offsets: matched_offset.map(|m| t.end_offset() - m),
                state: match pr.state {
                    ProgressState::Probe => ReplicaState::Probe,
                    ProgressState::Replicate => ReplicaState::Replicate,
                    ProgressState::Snapshot => ReplicaState::Snapshot,
                },
                recently_active: pr.recent_active
                    || g.heard.get(&peer).is_some_and(|&at| {
                        g.ticks.saturating_sub(at) <= raft.election_timeout() as u64
                    }),
            });
        }
        replicas.sort_by_key(|r| r.node);
    }
    let cs = store.conf_state();
    let mut voters = cs.voters.clone();
    voters.sort_unstable();
    let mut learners = cs.learners.clone();
    learners.sort_unstable();
    let log = store.log();
    GroupStatus {
        group: id,
        topic: log.topic().to_owned(),
        partition: log.partition(),
        node,
        role,
        leader: (raft.leader_id != raft::INVALID_ID).then_some(raft.leader_id),
        term: raft.term,
        commit_index: raft.raft_log.committed,
        applied_index: raft.raft_log.applied,
        first_index: t.first_index(),
        last_index,
        persisted_index: store.persisted_last_index(),
        high_watermark: g.high_watermark.load(Ordering::Acquire),
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        voters,
        learners,
        replicas,
        failed: g.failed.clone(),
    }
}

/// Syncs every job's log, several in parallel (each waits on the disk, not on the CPU; one
/// after another they would add up). One result per job, in order.
fn sync_logs(jobs: &[(GroupId, SyncJob)]) -> Vec<Result<(), StorageError>> {
    if jobs.len() <= 1 {
        return jobs.iter().map(|(_, j)| j.log.flush()).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(_, j)| scope.spawn(move || j.log.flush()))
            .collect();
        handles
            .into_iter()
            .zip(jobs)
            .map(|(h, (_, j))| {
                h.join().unwrap_or_else(|_| {
                    Err(StorageError::Poisoned {
                        topic: j.log.topic().to_owned(),
                        partition: j.log.partition(),
                        reason: "the sync thread panicked".to_owned(),
                    })
                })
            })
            .collect()
    })
}

/// A sync batch: its id and the logs it syncs.
type SyncBatch = (u64, Vec<(GroupId, SyncJob)>);

/// What the persistence thread reports for one or more sync batches.
struct Synced {
    /// Every batch up to this one is durable (except the failed groups' logs).
    batch: u64,
    failures: Vec<(GroupId, StorageError)>,
}

/// `PersistMode::Background`: a thread that syncs the batches a driver submits, coalescing
/// whatever queued while it was syncing into one round (group commit across turns).
struct Flusher {
    jobs: Option<std::sync::mpsc::Sender<SyncBatch>>,
    done: std::sync::mpsc::Receiver<Synced>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(node: NodeId, metrics: Arc<DriverMetrics>, waker: Option<Waker>) -> Self {
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<SyncBatch>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-persist".into())
            .spawn(move || {
                while let Ok((mut batch, mut jobs)) = jobs_rx.recv() {
                    for (b, more) in jobs_rx.try_iter() {
                        batch = b;
                        jobs.extend(more);
                    }
                    // One sync per log, however many batches it was dirty in.
                    let mut seen = std::collections::BTreeSet::new();
                    jobs.retain(|(id, _)| seen.insert(*id));
                    let started = Instant::now();
                    let results = sync_logs(&jobs);
                    metrics.turn_sync.observe(started.elapsed());
                    DriverMetrics::add(&metrics.syncs, jobs.len());
                    let failures = jobs
                        .into_iter()
                        .zip(results)
                        .filter_map(|((id, _), r)| r.err().map(|e| (id, e)))
                        .collect();
                    if done_tx.send(Synced { batch, failures }).is_err() {
                        return;
                    }
                    if let Some(wake) = &waker {
                        wake();
                    }
                }
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(node, error = %e, "cannot start the raft persistence thread");
                None
            }
        };
        Self {
            jobs: Some(jobs_tx),
            done: done_rx,
            thread,
        }
    }

    fn send(&self, batch: u64, jobs: Vec<(GroupId, SyncJob)>) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|tx| tx.send((batch, jobs)).is_ok())
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod high_watermark_tests {
    use super::*;

    /// Invariant: a published high watermark never moves back and never passes the log end.
    #[test]
    fn a_high_watermark_that_moves_back_or_passes_the_log_end_is_refused() {
        assert_eq!(next_high_watermark(5, 7, 7), Ok(7));
        assert_eq!(next_high_watermark(5, 5, 9), Ok(5));
        assert_eq!(
            next_high_watermark(5, 4, 9),
            Err(HighWatermarkFault::Backwards { old: 5, new: 4 })
        );
        assert_eq!(
            next_high_watermark(5, 8, 7),
            Err(HighWatermarkFault::BeyondLogEnd { new: 8, log_end: 7 })
        );
    }
}
