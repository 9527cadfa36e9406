//! The consumer: a classic-protocol group member (or a manually assigned
//! reader) with a per-record API and a raw-batch API.
//!
//! All state changes happen inside the caller's `poll`: rejoining after a
//! rebalance, resolving start positions (committed offset, else
//! `auto_offset_reset`), auto-commit of what earlier polls returned, and
//! following leader moves (a fetch error invalidates the topic's metadata;
//! the next fetch goes to the new leader from the same position). Positions
//! only advance past batches handed to the caller, and commits only carry
//! positions, so a crash or restart re-delivers at most what was not yet
//! committed: at-least-once.

pub mod assignor;
mod fetcher;
mod group;
pub mod offsets;
pub mod protocol;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::task::JoinSet;
use tracing::{debug, warn};

pub use assignor::AssignorKind;

use crate::cluster::Cluster;
use crate::compression::Compression;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::records::decode::{decode_batch, split_batches, verify_crc, BatchHeader};
use crate::records::{ConsumerRecord, RawBatch};
use crate::TopicPartition;
use fetcher::{FetchLimits, Outcome, Target};
use group::{GroupTiming, Membership};

/// Where to start when there is no committed offset (or it is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The log end: only new records.
    Latest,
    /// Fail with [`ClientError::NoOffset`].
    None,
}

/// Consumer options (Java names in parentheses).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Connection options.
    pub client: ClientConfig,
    /// (`group.id`) needed for `subscribe` and commits.
    pub group_id: Option<String>,
    /// (`auto.offset.reset`) default `Latest`.
    pub auto_offset_reset: OffsetReset,
    /// (`enable.auto.commit`) commit positions every interval, at the start
    /// of a poll (so only what earlier polls returned). Default true.
    pub enable_auto_commit: bool,
    /// (`auto.commit.interval.ms`) default 5 s.
    pub auto_commit_interval: Duration,
    /// (`session.timeout.ms`) default 45 s.
    pub session_timeout: Duration,
    /// (`max.poll.interval.ms`, sent as the rebalance timeout) default 300 s.
    pub rebalance_timeout: Duration,
    /// (`heartbeat.interval.ms`) default 3 s.
    pub heartbeat_interval: Duration,
    /// (`partition.assignment.strategy`) in preference order; default
    /// range, then cooperative-sticky.
    pub assignors: Vec<AssignorKind>,
    /// (`fetch.max.wait.ms`) default 500 ms.
    pub fetch_max_wait: Duration,
    /// (`fetch.min.bytes`) default 1.
    pub fetch_min_bytes: i32,
    /// (`fetch.max.bytes`) default 50 MiB.
    pub fetch_max_bytes: i32,
    /// (`max.partition.fetch.bytes`) default 1 MiB.
    pub max_partition_fetch_bytes: i32,
    /// Largest decompressed batch accepted (a guard against bombs).
    pub max_decompressed_batch_bytes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![AssignorKind::Range, AssignorKind::CooperativeSticky],
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            max_decompressed_batch_bytes: 256 * 1024 * 1024,
        }
    }
}

impl ConsumerConfig {
    /// Defaults with this bootstrap list and group.
    pub fn new(bootstrap: &str, group_id: Option<&str>) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            group_id: group_id.map(str::to_owned),
            ..Self::default()
        }
    }
}

#[derive(Debug, Default)]
struct PartState {
    /// Next offset to hand out; `None` until resolved.
    position: Option<i64>,
    /// Skip the committed offset when resolving (out of range).
    reset_only: bool,
    paused: bool,
    /// Bumped by seek/pause/assignment so stale fetch results are dropped.
    epoch: u64,
    buffered: VecDeque<(BatchHeader, Bytes)>,
    high_watermark: i64,
}

/// A batch handed out by a poll: header, bytes, and the first offset the
/// caller has not seen (records before it were returned earlier).
type Drained = (TopicPartition, BatchHeader, Bytes, i64);

/// A pending `commit_async`.
#[derive(Debug)]
pub struct CommitHandle(tokio::task::JoinHandle<Result<()>>);

impl CommitHandle {
    /// Waits for the commit's outcome.
    pub async fn wait(self) -> Result<()> {
        self.0
            .await
            .unwrap_or(Err(ClientError::Closed("commit task")))
    }
}

/// An async Kafka consumer. Methods take `&mut self`: one task drives it.
#[derive(Debug)]
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    subscription: Vec<String>,
    parts: BTreeMap<TopicPartition, PartState>,
    membership: Option<Membership>,
    fetches: JoinSet<Outcome>,
    fetching: HashSet<TopicPartition>,
    fetching_leaders: HashSet<i32>,
    last_commit: Instant,
    commit_pending: bool,
}

impl Consumer {
    /// A consumer; nothing is dialed before the first poll.
    pub fn new(config: ConsumerConfig) -> Result<Self> {
        if config.assignors.is_empty() {
            return Err(ClientError::Config(
                "at least one assignor is needed".into(),
            ));
        }
        if config.heartbeat_interval >= config.session_timeout {
            return Err(ClientError::Config(
                "heartbeat_interval must be below session_timeout".into(),
            ));
        }
        let cluster = Cluster::new(config.client.clone())?;
        Ok(Self {
            cluster,
            membership: config.group_id.as_deref().map(Membership::new),
            config,
            subscription: Vec::new(),
            parts: BTreeMap::new(),
            fetches: JoinSet::new(),
            fetching: HashSet::new(),
            fetching_leaders: HashSet::new(),
            last_commit: Instant::now(),
            commit_pending: false,
        })
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Subscribes to `topics` as a member of the configured group; the
    /// assignment arrives with the next poll.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let Some(m) = &self.membership else {
            return Err(ClientError::Usage("subscribe needs a group_id".into()));
        };
        self.subscription = topics.iter().map(|t| (*t).to_owned()).collect();
        m.request_rejoin();
        Ok(())
    }

    /// Reads exactly these partitions, without group membership (commits
    /// still go to the group if one is configured).
    pub fn assign(&mut self, tps: &[TopicPartition]) -> Result<()> {
        if !self.subscription.is_empty() {
            return Err(ClientError::Usage("assign after subscribe".into()));
        }
        self.parts.retain(|tp, _| tps.contains(tp));
        for tp in tps {
            self.parts.entry(tp.clone()).or_default();
        }
        Ok(())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// The next offset to be returned for `tp`, once known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.parts.get(tp).and_then(|p| p.position)
    }

    /// The high watermark last seen for `tp` (-1 before any fetch).
    pub fn high_watermark(&self, tp: &TopicPartition) -> i64 {
        self.parts.get(tp).map_or(-1, |p| p.high_watermark)
    }

    /// Moves `tp`'s position; buffered and in-flight data is discarded.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let p = self
            .parts
            .get_mut(tp)
            .ok_or_else(|| ClientError::Usage(format!("seek on unassigned partition {tp}")))?;
        p.position = Some(offset);
        p.reset_only = false;
        p.epoch += 1;
        p.buffered.clear();
        Ok(())
    }

    /// Stops returning and fetching `tps` until resumed.
    pub fn pause(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = true;
                p.epoch += 1;
                p.buffered.clear();
            }
        }
    }

    /// Resumes `tps` from their positions.
    pub fn resume(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = false;
            }
        }
    }

    /// Paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.parts
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Polls for records, waiting up to `timeout` when none are ready.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let drained = self.poll_core(timeout).await?;
        let mut out = Vec::new();
        for (tp, h, bytes, from) in drained {
            let recs = decode_batch(
                &tp.topic,
                tp.partition,
                &h,
                &bytes,
                from,
                self.config.max_decompressed_batch_bytes,
            )
            .map_err(|e| ClientError::CorruptBatch {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: h.base_offset,
                reason: e.to_string(),
            })?;
            out.extend(recs);
        }
        Ok(out)
    }

    /// Polls for whole record batches (CRC-checked, not decompressed).
    pub async fn poll_batches(&mut self, timeout: Duration) -> Result<Vec<RawBatch>> {
        let drained = self.poll_core(timeout).await?;
        let mut out = Vec::with_capacity(drained.len());
        for (tp, h, bytes, _) in drained {
            verify_crc(&h, &bytes).map_err(|e| ClientError::CorruptBatch {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: h.base_offset,
                reason: e.to_string(),
            })?;
            out.push(RawBatch {
                topic: tp.topic,
                partition: tp.partition,
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                record_count: h.record_count,
                compression: Compression::from_attributes(h.attributes).unwrap_or_default(),
                bytes,
            });
        }
        Ok(out)
    }

    async fn poll_core(&mut self, timeout: Duration) -> Result<Vec<Drained>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.maybe_auto_commit().await;
            self.ensure_group().await?;
            self.ensure_positions().await?;
            let out = self.drain();
            self.launch_fetches().await;
            if !out.is_empty() {
                if self.config.enable_auto_commit {
                    self.commit_pending = true;
                }
                return Ok(out);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            if self.fetches.is_empty() {
                // Nothing to wait on (no assignment, or leaders unknown).
                let nap = self.cluster.config().retry_backoff;
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + nap)).await;
                continue;
            }
            match tokio::time::timeout_at(deadline, self.fetches.join_next()).await {
                Ok(Some(Ok(outcome))) => self.absorb(outcome)?,
                Ok(Some(Err(join_err))) => {
                    warn!(error = %join_err, "fetch task ended abnormally");
                    self.fetching.clear();
                    self.fetching_leaders.clear();
                }
                Ok(None) => {}
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    /// Hands out buffered batches past each position and advances it.
    fn drain(&mut self) -> Vec<Drained> {
        let mut out = Vec::new();
        for (tp, p) in &mut self.parts {
            if p.paused {
                continue;
            }
            let Some(mut pos) = p.position else { continue };
            while let Some((h, bytes)) = p.buffered.pop_front() {
                if h.last_offset() < pos {
                    continue;
                }
                let from = pos;
                pos = h.last_offset() + 1;
                if h.is_control() || h.record_count == 0 {
                    continue;
                }
                out.push((tp.clone(), h, bytes, from));
            }
            p.position = Some(pos);
        }
        out
    }

    /// Starts a fetch for every leader that has none in flight.
    async fn launch_fetches(&mut self) {
        let mut by_leader: HashMap<i32, Vec<Target>> = HashMap::new();
        let mut refresh: HashSet<String> = HashSet::new();
        for (tp, p) in &self.parts {
            if p.paused || !p.buffered.is_empty() || self.fetching.contains(tp) {
                continue;
            }
            let Some(offset) = p.position else { continue };
            let leader = self
                .cluster
                .cached_topic(&tp.topic)
                .and_then(|t| {
                    t.partitions
                        .iter()
                        .find(|x| x.partition == tp.partition)
                        .map(|x| x.leader)
                })
                .filter(|l| *l >= 0);
            match leader {
                Some(l) if !self.fetching_leaders.contains(&l) => {
                    by_leader.entry(l).or_default().push(Target {
                        tp: tp.clone(),
                        offset,
                        epoch: p.epoch,
                    })
                }
                Some(_) => {}
                None => {
                    refresh.insert(tp.topic.clone());
                }
            }
        }
        for topic in refresh {
            if let Err(e) = self.cluster.topic(&topic, false).await {
                debug!(%topic, error = %e, "metadata refresh for fetch failed");
            }
        }
        let limits = FetchLimits {
            max_wait: self.config.fetch_max_wait,
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            partition_max_bytes: self.config.max_partition_fetch_bytes,
        };
        for (leader, targets) in by_leader {
            self.fetching_leaders.insert(leader);
            for t in &targets {
                self.fetching.insert(t.tp.clone());
            }
            self.fetches.spawn(fetcher::fetch(
                Arc::clone(&self.cluster),
                leader,
                targets,
                limits.clone(),
            ));
        }
    }

    /// Files a fetch outcome into the partition buffers.
    fn absorb(&mut self, outcome: Outcome) -> Result<()> {
        self.fetching_leaders.remove(&outcome.leader);
        for t in &outcome.targets {
            self.fetching.remove(&t.tp);
        }
        let Ok(fetched) = outcome.result else {
            return Ok(()); // logged and backed off in the fetch task
        };
        for f in fetched {
            let Some(p) = self.parts.get_mut(&f.target.tp) else {
                continue;
            };
            if p.epoch != f.target.epoch || p.position != Some(f.target.offset) || p.paused {
                continue;
            }
            match f.error {
                None => {
                    p.high_watermark = f.high_watermark;
                    let batches = split_batches(&f.records).map_err(|(offset, e)| {
                        ClientError::CorruptBatch {
                            topic: f.target.tp.topic.clone(),
                            partition: f.target.tp.partition,
                            offset,
                            reason: e.to_string(),
                        }
                    })?;
                    p.buffered.extend(batches);
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    warn!(tp = %f.target.tp, offset = f.target.offset, "offset out of range; resetting");
                    p.position = None;
                    p.reset_only = true;
                }
                Some(e) => {
                    debug!(tp = %f.target.tp, error = %e, "fetch partition error; refreshing metadata");
                    self.cluster.invalidate(&f.target.tp.topic);
                }
            }
        }
        Ok(())
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || !self.commit_pending || self.config.group_id.is_none()
        {
            return;
        }
        if self.last_commit.elapsed() < self.config.auto_commit_interval {
            return;
        }
        if let Err(e) = self.commit_sync().await {
            warn!(error = %e, "auto-commit failed");
        }
    }

    /// Joins or rejoins the group when needed and applies the assignment.
    async fn ensure_group(&mut self) -> Result<()> {
        if self.subscription.is_empty() {
            return Ok(());
        }
        let needs = self.membership.as_ref().is_some_and(Membership::needs_join);
        if !needs {
            return Ok(());
        }
        let cooperative = self
            .membership
            .as_ref()
            .and_then(|m| m.protocol)
            .is_some_and(AssignorKind::is_cooperative);
        if !cooperative {
            // Eager: commit and give everything up before rejoining.
            if self.config.enable_auto_commit && self.commit_pending {
                if let Err(e) = self.commit_sync().await {
                    warn!(error = %e, "commit before rebalance failed");
                }
            }
            self.revoke_all();
        }
        let owned = self.assignment();
        let timing = GroupTiming {
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            heartbeat_interval: self.config.heartbeat_interval,
        };
        let topics = self.subscription.clone();
        let assignors = self.config.assignors.clone();
        let Some(m) = self.membership.as_mut() else {
            return Ok(());
        };
        let assigned = m
            .join(&self.cluster, &timing, &assignors, &topics, &owned)
            .await?;
        let cooperative = m.protocol.is_some_and(AssignorKind::is_cooperative);
        let new: HashSet<TopicPartition> = assigned.into_iter().collect();
        let revoked: Vec<TopicPartition> = self
            .parts
            .keys()
            .filter(|tp| !new.contains(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let offsets = self.positions_of(&revoked);
                if let Err(e) = self.commit_offsets_sync(&offsets).await {
                    warn!(error = %e, "commit of revoked partitions failed");
                }
            }
            for tp in &revoked {
                self.parts.remove(tp);
            }
            if cooperative {
                // Tell the leader they are free so it can hand them out.
                if let Some(m) = &self.membership {
                    m.request_rejoin();
                }
            }
        }
        for tp in new {
            self.parts.entry(tp).or_default();
        }
        Ok(())
    }

    fn revoke_all(&mut self) {
        self.parts.clear();
        self.fetches.abort_all();
        self.fetching.clear();
        self.fetching_leaders.clear();
    }

    fn positions_of(&self, tps: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        tps.iter()
            .filter_map(|tp| {
                self.parts
                    .get(tp)
                    .and_then(|p| p.position)
                    .map(|o| (tp.clone(), o))
            })
            .collect()
    }

    /// Resolves unknown positions: committed offset, else the reset policy.
    async fn ensure_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .parts
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut committed = HashMap::new();
        if let Some(group) = &self.config.group_id {
            let ask: Vec<TopicPartition> = missing
                .iter()
                .filter(|tp| self.parts.get(*tp).is_some_and(|p| !p.reset_only))
                .cloned()
                .collect();
            if !ask.is_empty() {
                committed = offsets::fetch_committed(&self.cluster, group, &ask).await?;
            }
        }
        let mut reset = Vec::new();
        for tp in &missing {
            match committed.get(tp) {
                Some(&o) if o >= 0 => {
                    if let Some(p) = self.parts.get_mut(tp) {
                        p.position = Some(o);
                    }
                }
                _ => reset.push(tp.clone()),
            }
        }
        if reset.is_empty() {
            return Ok(());
        }
        let ts = match self.config.auto_offset_reset {
            OffsetReset::Earliest => offsets::EARLIEST,
            OffsetReset::Latest => offsets::LATEST,
            OffsetReset::None => {
                let tp = &reset[0];
                return Err(ClientError::NoOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                });
            }
        };
        let req: Vec<(TopicPartition, i64)> = reset.iter().map(|tp| (tp.clone(), ts)).collect();
        let found = offsets::list_offsets(&self.cluster, &req).await?;
        for (tp, o) in found {
            if let Some(p) = self.parts.get_mut(&tp) {
                p.position = Some(o);
                p.reset_only = false;
            }
        }
        Ok(())
    }

    fn member(&self) -> (i32, String) {
        match &self.membership {
            Some(m) if m.joined && !self.subscription.is_empty() => {
                (m.generation, m.member_id.clone())
            }
            _ => (-1, String::new()),
        }
    }

    /// Commits the positions of every assigned partition and waits.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.positions_of(&self.assignment());
        self.commit_offsets_sync(&offsets).await?;
        self.last_commit = Instant::now();
        self.commit_pending = false;
        Ok(())
    }

    /// Commits the given next-offsets and waits.
    pub async fn commit_offsets_sync(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| ClientError::Usage("commit needs a group_id".into()))?;
        let (generation, member) = self.member();
        let res = offsets::commit(&self.cluster, &group, generation, &member, offsets).await;
        if let Err(e) = &res {
            if matches!(
                e.response_error(),
                Some(
                    ResponseError::RebalanceInProgress
                        | ResponseError::IllegalGeneration
                        | ResponseError::UnknownMemberId
                )
            ) {
                if let Some(m) = &self.membership {
                    m.request_rejoin();
                }
            }
        }
        res
    }

    /// Starts committing the current positions and returns at once; the
    /// handle may be awaited or dropped.
    pub fn commit_async(&mut self) -> Result<CommitHandle> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| ClientError::Usage("commit needs a group_id".into()))?;
        let offsets = self.positions_of(&self.assignment());
        let (generation, member) = self.member();
        let cluster = Arc::clone(&self.cluster);
        self.last_commit = Instant::now();
        self.commit_pending = false;
        Ok(CommitHandle(tokio::spawn(async move {
            offsets::commit(&cluster, &group, generation, &member, &offsets).await
        })))
    }

    /// The group's committed offsets for `tps` (-1 when none).
    pub async fn committed(&self, tps: &[TopicPartition]) -> Result<HashMap<TopicPartition, i64>> {
        let group = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| ClientError::Usage("committed needs a group_id".into()))?;
        offsets::fetch_committed(&self.cluster, group, tps).await
    }

    /// Commits (when auto-commit is on) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        self.fetches.abort_all();
        if self.config.enable_auto_commit && self.config.group_id.is_some() && self.commit_pending {
            if let Err(e) = self.commit_sync().await {
                warn!(error = %e, "final commit failed");
            }
        }
        if let Some(m) = self.membership.as_mut() {
            m.leave(&self.cluster).await?;
        }
        Ok(())
    }
}
