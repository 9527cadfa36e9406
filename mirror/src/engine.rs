//! The mirror loop: read upstream batches, decide each record's fate,
//! produce, track acknowledgements, checkpoint.
//!
//! One task drives everything, so there is no shared state to lock:
//! reading, registry look-ups (rare: once per schema id) and producing are
//! sequential; the producer's sender task does the network work and the
//! acknowledgements come back as futures polled between reads. Reading
//! pauses while too many records are unacknowledged (back-pressure).
//!
//! Exactly once, in short (details in `checkpoint`, `tracker` and
//! `recovery`): every written record carries its upstream coordinates;
//! checkpoints store upstream positions and covered target offsets in one
//! atomic OffsetCommit on the local broker; at start-up the tails above
//! the covered offsets are read back and the upstream records found there
//! are not written again. The producer is idempotent (no duplicates from
//! its own retries) and keeps each partition's order, so records of one
//! upstream partition keep their order in every target partition.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use starlog_clients::admin::{AlterOp, ConfigResource, NewTopic};
use starlog_clients::consumer::offsets::{list_offsets, EARLIEST, LATEST};
use starlog_clients::records::decode::{decode_batch, BatchHeader};
use starlog_clients::{
    Acks, Admin, ClientError, ConsumerRecord, Header, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, RawBatch, RecordMetadata, TopicPartition,
};
use starlog_clients::{Consumer, ConsumerConfig};
use starlog_processors::dead_letter::{REASON_HEADER, TOPIC_HEADER};
use starlog_wire::Framing;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::body_check;
use crate::checkpoint::{self, Checkpoint};
use crate::config::{BadInputPolicy, MirrorConfig, Partitioning, SchemaIds, StartFrom, TopicRule};
use crate::error::MirrorError;
use crate::partitioning;
use crate::passthrough::{self, Tails};
use crate::progress::{Progress, TopicView};
use crate::provenance::Source;
use crate::recovery;
use crate::registry::{RegistryClient, SchemaMapper};
use crate::status::MirrorStatus;
use crate::summary::Summary;
use crate::tracker::{EntryId, Tracker};

/// What happens to one record.
enum Fate {
    Write {
        partition: i32,
        value: Option<bytes::Bytes>,
        rewritten: bool,
    },
    Bad {
        kind: &'static str,
        reason: String,
    },
}

struct Delivery {
    entry: EntryId,
    upstream_topic: String,
    dead_letter: bool,
    /// `Some(records)` for a pass-through batch (one delivery for all).
    batch: Option<usize>,
    result: Result<RecordMetadata, ClientError>,
}

/// An upstream topic's route.
#[derive(Debug, Clone)]
struct Route {
    rule: usize,
    target: String,
}

struct Mirror {
    cfg: MirrorConfig,
    group: String,
    consumer: Consumer,
    producer: Producer,
    admin: Admin,
    mapper: Option<SchemaMapper>,
    tracker: Tracker,
    /// Pass-through batches of an earlier run not yet recognised.
    tails: Tails,
    summary: Summary,
    /// Ensured local topics and their partition counts.
    targets: HashMap<String, i32>,
    routes: HashMap<String, Route>,
    /// Next offset to process per assigned upstream partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Upstream positions of the last checkpoint for partitions not
    /// assigned now (kept so they are not forgotten).
    carried: BTreeMap<TopicPartition, i64>,
    /// Acknowledgements come back here: each delivery future is awaited
    /// on its own small task, so none waits behind another.
    acks_tx: mpsc::UnboundedSender<Delivery>,
    acks: mpsc::UnboundedReceiver<Delivery>,
    seq: u64,
    last_checkpoint: Instant,
    last_discovery: Instant,
    progress: Progress,
    /// Live counters for an outside view, and when they were last published.
    status: Option<Arc<MirrorStatus>>,
    last_publish: Instant,
    /// `Some` until the first checkpoint exists: where new topics start.
    first_run: Option<StartFrom>,
    failure: Option<MirrorError>,
}

/// Runs the mirror until `shutdown` resolves or an error ends it. On a
/// clean end everything produced is acknowledged and checkpointed.
pub async fn run(
    config: MirrorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, MirrorError> {
    run_with_status(config, shutdown, Arc::new(MirrorStatus::default())).await
}

/// [`run`], publishing live counters to `status` (a few times a second and
/// at the end of the run).
pub async fn run_with_status(
    config: MirrorConfig,
    shutdown: impl Future<Output = ()>,
    status: Arc<MirrorStatus>,
) -> Result<Summary, MirrorError> {
    status.run_started();
    let mut summary = Summary::default();
    let result = run_inner(config, shutdown, &status, &mut summary).await;
    let error = result.as_ref().err().map(ToString::to_string);
    status.run_ended(&summary, error);
    result.map(|()| summary)
}

async fn run_inner(
    config: MirrorConfig,
    shutdown: impl Future<Output = ()>,
    status: &Arc<MirrorStatus>,
    out: &mut Summary,
) -> Result<(), MirrorError> {
    let started = Instant::now();
    let mut m = Mirror::connect(config)?;
    m.status = Some(Arc::clone(status));
    let setup = m.start().await;
    if let Err(e) = setup {
        m.progress.finish();
        *out = m.summary;
        return Err(e);
    }
    tokio::pin!(shutdown);
    let outcome = m.run_loop(shutdown.as_mut()).await;
    let end = m.finish().await;
    m.progress.finish();
    m.summary.elapsed = started.elapsed();
    if let Some(map) = &m.mapper {
        m.summary.schema_ids = map.mappings();
        m.summary.registry_calls = map.calls;
    }
    *out = std::mem::take(&mut m.summary);
    outcome?;
    end?;
    Ok(())
}

fn registry_client(
    role: &'static str,
    r: &crate::config::RegistryConfig,
) -> Result<RegistryClient, MirrorError> {
    let auth = r.username.as_deref().zip(r.password.as_deref());
    RegistryClient::new(role, &r.url, auth, r.tls.clone(), r.timeout).map_err(|e| {
        MirrorError::Config(crate::error::ConfigError::Invalid {
            path: format!("{role}.registry.url"),
            message: e.to_string(),
        })
    })
}

impl Mirror {
    fn connect(cfg: MirrorConfig) -> Result<Self, MirrorError> {
        let mut ccfg = ConsumerConfig {
            client: cfg.upstream.clone(),
            group_id: None,
            enable_auto_commit: false,
            auto_offset_reset: OffsetReset::Earliest,
            fetch_max_wait: Duration::from_millis(200),
            ..ConsumerConfig::default()
        };
        ccfg.max_partition_fetch_bytes =
            i32::try_from(cfg.max_record_bytes.max(8 << 20)).unwrap_or(i32::MAX);
        ccfg.max_decompressed_batch_bytes = cfg.max_record_bytes.max(8 << 20) * 8;
        let consumer =
            Consumer::new(ccfg).map_err(|e| MirrorError::client("upstream consumer", e))?;
        // Keep in step with `max_request_bytes`.
        let max_request = (cfg.max_record_bytes + 64 * 1024).max(4 << 20);
        let pcfg = ProducerConfig {
            client: cfg.local.clone(),
            acks: Acks::All,
            idempotence: true,
            linger: cfg.linger,
            batch_size: cfg.batch_bytes,
            compression: cfg.compression,
            max_request_size: max_request,
            buffer_memory: (max_request * 4).max(256 << 20),
            auto_create_topics: false,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(pcfg).map_err(|e| MirrorError::client("local producer", e))?;
        let admin =
            Admin::new(cfg.local.clone()).map_err(|e| MirrorError::client("local admin", e))?;
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let mapper = match (&cfg.upstream_registry, &cfg.local_registry) {
            (Some(u), Some(l)) => Some(SchemaMapper::new(
                registry_client("upstream", u)?,
                registry_client("local", l)?,
                cfg.alert_id_fields.clone(),
                Duration::from_secs(1),
            )),
            _ => None,
        };
        Ok(Self {
            group: cfg.group(),
            progress: Progress::new(cfg.progress),
            status: None,
            last_publish: Instant::now(),
            consumer,
            producer,
            admin,
            mapper,
            tracker: Tracker::default(),
            tails: Tails::default(),
            summary: Summary::default(),
            targets: HashMap::new(),
            routes: HashMap::new(),
            positions: BTreeMap::new(),
            carried: BTreeMap::new(),
            acks_tx,
            acks,
            seq: 0,
            last_checkpoint: Instant::now(),
            last_discovery: Instant::now(),
            first_run: None,
            failure: None,
            cfg,
        })
    }

    fn checkpoint_error(&self, reason: String) -> MirrorError {
        MirrorError::Checkpoint {
            group: self.group.clone(),
            reason,
        }
    }

    /// Loads the checkpoint, reads back what was written after it, finds
    /// the upstream topics and writes a fresh checkpoint before anything
    /// is produced.
    async fn start(&mut self) -> Result<(), MirrorError> {
        let entries = checkpoint::fetch(self.admin.cluster(), &self.group)
            .await
            .map_err(|e| {
                MirrorError::client(format!("reading the checkpoint of {}", self.group), e)
            })?;
        let cp = checkpoint::decode(&entries).map_err(|r| self.checkpoint_error(r))?;
        if let BadInputPolicy::DeadLetter { topic } = &self.cfg.bad_input {
            let (topic, parts) = (topic.clone(), self.cfg.dead_letter_partitions);
            self.ensure_topic(&topic, parts, None, false).await?;
        }
        match cp {
            None => {
                info!(group = %self.group, "no checkpoint: first run");
                self.first_run = Some(self.cfg.start);
            }
            Some(cp) => {
                info!(group = %self.group, seq = cp.seq, upstream = cp.upstream.len(), targets = cp.targets.len(), "resuming from checkpoint");
                self.seq = cp.seq;
                self.recover(&cp).await?;
                self.carried = cp.upstream;
            }
        }
        self.discover().await?;
        // The first checkpoint of this run: positions fixed, every target
        // partition's covered offset recorded, before the first produce.
        self.checkpoint().await?;
        self.first_run = None;
        Ok(())
    }

    async fn recover(&mut self, cp: &Checkpoint) -> Result<(), MirrorError> {
        let tps: Vec<TopicPartition> = cp.targets.keys().cloned().collect();
        let ends =
            recovery::settled_end_offsets(&self.cfg.local, &tps, self.cfg.recovery_settle).await?;
        let mut ranges = Vec::new();
        for (tp, covered) in &cp.targets {
            let Some(end) = ends.get(tp).copied() else {
                return Err(self.checkpoint_error(format!(
                    "local partition {tp} of the checkpoint has no end offset"
                )));
            };
            if end < *covered {
                return Err(self.checkpoint_error(format!(
                    "local partition {tp} ends at {end}, below the checkpoint's {covered}: the local log lost records or the topic was re-created; refusing to guess"
                )));
            }
            self.tracker.track_target(tp.clone(), end);
            ranges.push((tp.clone(), *covered, end));
        }
        let limit = Duration::from_secs(120);
        let scan =
            recovery::scan(&self.cfg.local, &ranges, self.cfg.max_record_bytes, limit).await?;
        let (found, read) = (scan.found, scan.read);
        self.summary.recovery_scanned = read;
        let batches = scan.batches.len();
        for fb in scan.batches {
            self.tails.add(fb.at.0, fb.at.1, fb.records, fb.fingerprint);
        }
        self.tail_sources(cp).await?;
        let mut kept = 0usize;
        for f in found {
            let up = TopicPartition::new(f.source.topic.clone(), f.source.partition);
            let from = cp.upstream.get(&up).copied().unwrap_or(0);
            if f.source.offset >= from {
                self.tracker.add_recovered(up, f.source.offset, f.at);
                kept += 1;
            }
        }
        info!(
            read,
            already_present = kept,
            pass_through_batches = batches,
            "local tails read back"
        );
        Ok(())
    }

    /// For each target partition with pass-through batches in its tail: the
    /// upstream partitions of the checkpoint that write to it (preserve
    /// rules), with their current upstream end.
    async fn tail_sources(&mut self, cp: &Checkpoint) -> Result<(), MirrorError> {
        let targets = self.tails.targets();
        if targets.is_empty() {
            return Ok(());
        }
        let mut pairs = Vec::new();
        for up in cp.upstream.keys() {
            let Some((rule, target)) = self.cfg.route(&up.topic) else {
                continue;
            };
            if self.cfg.topics[rule].partitioning != Partitioning::Preserve {
                continue;
            }
            let t = TopicPartition::new(target, up.partition);
            if targets.contains(&t) {
                pairs.push((t, up.clone()));
            }
        }
        let req: Vec<(TopicPartition, i64)> =
            pairs.iter().map(|(_, up)| (up.clone(), LATEST)).collect();
        let ends = if req.is_empty() {
            HashMap::new()
        } else {
            list_offsets(self.consumer.cluster(), &req)
                .await
                .map_err(|e| MirrorError::client("upstream end offsets at recovery", e))?
        };
        for (t, up) in pairs {
            let end = ends.get(&up).copied().unwrap_or(0);
            self.tails.add_source(&t, up, end);
        }
        // Sources already at their end cannot have written anything more.
        self.tails.sources_at(&cp.upstream);
        Ok(())
    }

    /// Creates `topic` if needed, or (when `strict`) checks its partition
    /// count; applies `retention.ms`. Registers its partitions with the
    /// tracker. A non-strict topic (the dead-letter topic) keeps the
    /// partitions it has.
    async fn ensure_topic(
        &mut self,
        topic: &str,
        mut partitions: i32,
        retention_ms: Option<i64>,
        strict: bool,
    ) -> Result<bool, MirrorError> {
        if self.targets.contains_key(topic) {
            return Ok(false);
        }
        let target_err = |reason: String| MirrorError::Target {
            topic: topic.to_owned(),
            reason,
        };
        let existing = match self.admin.describe_topics(&[topic]).await {
            Ok(mut v) => v.pop(),
            Err(ClientError::UnknownTopic { .. }) => None,
            Err(e)
                if e.response_error()
                    == Some(kafka_protocol::ResponseError::UnknownTopicOrPartition) =>
            {
                None
            }
            Err(e) => {
                return Err(MirrorError::client(
                    format!("describing target topic {topic}"),
                    e,
                ))
            }
        };
        match existing {
            Some(info) if !strict => partitions = info.partition_count(),
            Some(info) => {
                if info.partition_count() != partitions {
                    return Err(target_err(format!(
                        "exists with {} partitions but the configuration says {partitions}; records are placed by hash over the configured count",
                        info.partition_count()
                    )));
                }
                if let Some(ms) = retention_ms {
                    self.admin
                        .alter_configs(
                            &ConfigResource::Topic(topic.to_owned()),
                            &[AlterOp::Set("retention.ms".into(), ms.to_string())],
                        )
                        .await
                        .map_err(|e| {
                            MirrorError::client(format!("setting retention.ms of {topic}"), e)
                        })?;
                }
            }
            None => {
                let mut nt = NewTopic::new(topic, partitions);
                if let Some(ms) = retention_ms {
                    nt = nt.config("retention.ms", ms.to_string());
                }
                match self.admin.create_topics(&[nt]).await {
                    Ok(()) => info!(%topic, partitions, ?retention_ms, "target topic created"),
                    Err(e)
                        if e.response_error()
                            == Some(kafka_protocol::ResponseError::TopicAlreadyExists) => {}
                    Err(e) => {
                        return Err(MirrorError::client(
                            format!("creating target topic {topic}"),
                            e,
                        ))
                    }
                }
                // Wait until the new topic has leaders (bounded inside).
                self.admin
                    .describe_topics(&[topic])
                    .await
                    .map_err(|e| MirrorError::client(format!("describing new topic {topic}"), e))?;
            }
        }
        let tps: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect();
        let ends = recovery::end_offsets(&self.cfg.local, &tps).await?;
        for tp in tps {
            let end = ends.get(&tp).copied().ok_or_else(|| {
                target_err(format!("no end offset for partition {}", tp.partition))
            })?;
            self.tracker.track_target(tp, end);
        }
        self.targets.insert(topic.to_owned(), partitions);
        Ok(true)
    }

    /// Finds upstream partitions that match a rule and are not read yet;
    /// ensures their targets; assigns and positions them. A new target
    /// topic is checkpointed before anything is written to it.
    async fn discover(&mut self) -> Result<(), MirrorError> {
        self.last_discovery = Instant::now();
        let meta = self
            .consumer
            .cluster()
            .refresh(&[], false)
            .await
            .map_err(|e| MirrorError::client("listing upstream topics", e))?;
        let mut new_tps = Vec::new();
        for t in &meta.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                continue;
            }
            let Some((rule, target)) = self.cfg.route(&name) else {
                continue;
            };
            if !crate::config::valid_topic(&target) {
                return Err(MirrorError::Target {
                    topic: target,
                    reason: format!(
                        "the rule for upstream topic {name} makes an invalid topic name"
                    ),
                });
            }
            self.routes.insert(
                name.clone(),
                Route {
                    rule,
                    target: target.clone(),
                },
            );
            let r = &self.cfg.topics[rule];
            if r.partitioning == Partitioning::Preserve {
                if let Some(p) = t
                    .partitions
                    .iter()
                    .map(|p| p.partition_index)
                    .find(|p| *p >= r.partitions)
                {
                    return Err(MirrorError::Target {
                        topic: target,
                        reason: format!(
                            "upstream topic {name} has partition {p} but the target has {} partitions; partitioning: preserve keeps the partition number",
                            r.partitions
                        ),
                    });
                }
            }
            for p in &t.partitions {
                let tp = TopicPartition::new(name.clone(), p.partition_index);
                if !self.positions.contains_key(&tp) {
                    new_tps.push((tp, rule, target.clone()));
                }
            }
        }
        if new_tps.is_empty() {
            return Ok(());
        }
        let mut new_target = false;
        for (_, rule, target) in &new_tps {
            let r = &self.cfg.topics[*rule];
            let (parts, ret) = (r.partitions, r.retention_ms);
            new_target |= self.ensure_topic(target, parts, ret, true).await?;
        }
        // Positions: the checkpoint's, else the start rule (first run) or
        // the log start (a topic that appeared later).
        let mut resolve = Vec::new();
        for (tp, _, _) in &new_tps {
            if let Some(p) = self.carried.remove(tp) {
                self.positions.insert(tp.clone(), p);
            } else {
                let ts = match self.first_run {
                    Some(StartFrom::Latest) => LATEST,
                    _ => EARLIEST,
                };
                resolve.push((tp.clone(), ts));
            }
        }
        if !resolve.is_empty() {
            let found = list_offsets(self.consumer.cluster(), &resolve)
                .await
                .map_err(|e| MirrorError::client("start offsets of new upstream partitions", e))?;
            for (tp, _) in &resolve {
                let o = found.get(tp).copied().filter(|o| *o >= 0).unwrap_or(0);
                self.positions.insert(tp.clone(), o);
            }
        }
        let all: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        self.consumer
            .assign(&all)
            .map_err(|e| MirrorError::client("assigning upstream partitions", e))?;
        for (tp, _, target) in &new_tps {
            let pos = self.positions.get(tp).copied().unwrap_or(0);
            self.tracker.track(tp.clone(), pos);
            self.consumer
                .seek(tp, pos)
                .map_err(|e| MirrorError::client("positioning upstream partitions", e))?;
            self.summary
                .topics
                .entry(tp.topic.clone())
                .or_default()
                .target = target.clone();
            info!(upstream = %tp, position = pos, %target, "mirroring upstream partition");
        }
        if new_target && self.first_run.is_none() {
            self.checkpoint().await?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<(), MirrorError> {
        let (positions, mut targets) = self.tracker.snapshot();
        if !self.tails.targets().is_empty() {
            self.tails.sources_at(&positions);
            for (tp, low) in self.tails.low_marks() {
                let t = targets.entry(tp).or_insert(low);
                *t = (*t).min(low);
            }
        }
        let mut upstream = self.carried.clone();
        upstream.extend(positions);
        let cp = Checkpoint {
            seq: self.seq + 1,
            upstream,
            targets,
        };
        let entries = checkpoint::encode(&cp).map_err(|r| self.checkpoint_error(r))?;
        checkpoint::commit(self.admin.cluster(), &self.group, &entries)
            .await
            .map_err(|e| {
                MirrorError::client(
                    format!("writing checkpoint {} of {}", cp.seq, self.group),
                    e,
                )
            })?;
        self.seq = cp.seq;
        self.summary.checkpoints += 1;
        self.last_checkpoint = Instant::now();
        debug!(seq = cp.seq, "checkpoint written");
        Ok(())
    }

    fn absorb(&mut self, d: Delivery) {
        match d.result {
            Ok(md) => {
                let at = (TopicPartition::new(md.topic, md.partition), md.offset);
                let c = self.summary.topics.entry(d.upstream_topic).or_default();
                match d.batch {
                    Some(n) => {
                        c.mirrored += n as u64;
                        c.passed_through += n as u64;
                        self.tracker.landed_batch(&d.entry, at, n, true);
                    }
                    None => {
                        if d.dead_letter {
                            c.dead_lettered += 1;
                        } else {
                            c.mirrored += 1;
                        }
                        self.tracker.landed(&d.entry, at, true);
                    }
                }
            }
            Err(e) => {
                match d.batch {
                    Some(n) => self.tracker.failed_batch(&d.entry, n),
                    None => self.tracker.failed(&d.entry),
                }
                warn!(upstream = %d.entry.tp, error = %e, "produce failed; stopping");
                if self.failure.is_none() {
                    self.failure = Some(MirrorError::Produce {
                        topic: d.upstream_topic,
                        partition: d.entry.tp.partition,
                        source: e,
                    });
                }
            }
        }
    }

    /// Takes every acknowledgement that is ready, without waiting.
    fn drain_ready(&mut self) {
        while let Ok(d) = self.acks.try_recv() {
            self.absorb(d);
        }
    }

    async fn run_loop(
        &mut self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), MirrorError> {
        loop {
            if (&mut shutdown).now_or_never().is_some() {
                info!("shutdown requested");
                return Ok(());
            }
            self.drain_ready();
            if let Some(e) = self.failure.take() {
                return Err(e);
            }
            if self.tracker.in_flight() >= self.cfg.max_in_flight_records {
                if let Ok(Some(d)) =
                    tokio::time::timeout(Duration::from_millis(200), self.acks.recv()).await
                {
                    self.absorb(d);
                }
                continue;
            }
            if self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval {
                self.checkpoint().await?;
            }
            if self.last_discovery.elapsed() >= self.cfg.discovery_interval {
                match self.discover().await {
                    Ok(()) => {}
                    // An upstream or local blip: look again next interval.
                    Err(MirrorError::Client { context, source }) if source.is_retriable() => {
                        warn!(%context, error = %source, "topic discovery failed; retrying later");
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.progress.due() {
                self.show_progress();
            }
            if self.status.is_some() && self.last_publish.elapsed() >= Duration::from_millis(200) {
                self.publish();
            }
            let batches = self
                .consumer
                .poll_batches(Duration::from_millis(100))
                .await
                .map_err(|e| match e {
                    ClientError::CorruptBatch {
                        topic,
                        partition,
                        offset,
                        reason,
                    } => MirrorError::CorruptUpstream {
                        topic,
                        partition,
                        offset,
                        reason,
                    },
                    e => MirrorError::client("reading upstream", e),
                })?;
            for b in batches {
                self.handle_batch(b).await?;
            }
        }
    }

    /// Upstream records not read yet, per topic.
    fn lag(&self) -> BTreeMap<String, i64> {
        let mut lag: BTreeMap<String, i64> = BTreeMap::new();
        for (tp, pos) in &self.positions {
            let hw = self.consumer.high_watermark(tp);
            let l = lag.entry(tp.topic.clone()).or_default();
            if hw >= 0 {
                *l += (hw - pos).max(0);
            }
        }
        lag
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Some(status) = &self.status {
            status.publish(&self.summary, self.lag());
        }
    }

    fn show_progress(&mut self) {
        let mut views: BTreeMap<String, TopicView> = BTreeMap::new();
        for (topic, lag) in self.lag() {
            views.entry(topic).or_default().lag = lag;
        }
        for (topic, v) in &mut views {
            if let Some(c) = self.summary.topics.get(topic) {
                v.mirrored = c.mirrored;
                v.bad = c.dead_lettered + c.skipped;
            }
        }
        self.progress.update(&views);
    }

    /// Sends what was produced, waits for every acknowledgement, and
    /// writes the final checkpoint.
    async fn finish(&mut self) -> Result<(), MirrorError> {
        if let Err(e) = self.producer.flush().await {
            warn!(error = %e, "final flush failed");
        }
        while self.tracker.in_flight() > 0 {
            // Every sent record's task reports exactly once (the producer
            // resolves each delivery future, with an error at the latest
            // after its delivery timeout).
            match self.acks.recv().await {
                Some(d) => self.absorb(d),
                None => break,
            }
        }
        // Even after a failure the acknowledged part is checkpointed: the
        // snapshot never covers a record that is not in the log.
        let cp = self.checkpoint().await;
        self.publish();
        cp?;
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        Ok(())
    }

    async fn handle_batch(&mut self, b: RawBatch) -> Result<(), MirrorError> {
        let tp = TopicPartition::new(b.topic.clone(), b.partition);
        let Some(pos) = self.positions.get(&tp).copied() else {
            return Ok(());
        };
        if b.last_offset < pos {
            return Ok(());
        }
        let corrupt = |reason: String| MirrorError::CorruptUpstream {
            topic: b.topic.clone(),
            partition: b.partition,
            offset: b.base_offset,
            reason,
        };
        let header = BatchHeader::read(&b.bytes)
            .map_err(|_| corrupt("batch shorter than its header".into()))?;
        let limit = self.cfg.max_record_bytes.max(8 << 20) * 8;
        let records = decode_batch(&b.topic, b.partition, &header, &b.bytes, pos, limit)
            .map_err(|e| corrupt(e.to_string()))?;
        let Some(route) = self.routes.get(&b.topic).cloned() else {
            return Ok(());
        };
        let rule = self.cfg.topics[route.rule].clone();
        if b.base_offset > pos + 1 {
            // One missing offset is a transaction marker; more means the
            // upstream no longer has those records (retention, compaction).
            warn!(upstream = %tp, from = pos, to = b.base_offset, "upstream offsets missing (retention or compaction upstream)");
        }
        if rule.partitioning == Partitioning::Preserve
            && b.base_offset >= pos
            && self
                .whole_batch(&b, &header, &records, &rule, &route)
                .await?
        {
            return Ok(());
        }
        let entry = self
            .tracker
            .begin(&tp, pos.max(b.base_offset), b.last_offset + 1);
        self.summary.topics.entry(b.topic.clone()).or_default().read += records.len() as u64;
        for rec in records {
            if let Some(at) = self.tracker.take_recovered(&tp, rec.offset) {
                self.tracker.landed(&entry, at, false);
                self.summary
                    .topics
                    .entry(b.topic.clone())
                    .or_default()
                    .already_present += 1;
                continue;
            }
            match self.fate(&rule, &route.target, &rec).await {
                Fate::Write {
                    partition,
                    value,
                    rewritten,
                } => {
                    let counts = self.summary.topics.entry(b.topic.clone()).or_default();
                    counts.bytes += value.as_ref().map_or(0, |v| v.len() as u64);
                    if rewritten {
                        counts.rewritten += 1;
                    }
                    let mut headers = rec.headers.clone();
                    headers.extend(source_of(&rec).headers());
                    let out = ProducerRecord {
                        topic: route.target.clone(),
                        partition: Some(partition),
                        key: rec.key.clone(),
                        value,
                        headers,
                        timestamp: Some(rec.timestamp),
                    };
                    self.send(&entry, &b.topic, out, false).await?;
                }
                Fate::Bad { kind, reason } => {
                    *self.summary.bad_input.entry(kind.to_owned()).or_default() += 1;
                    match self.cfg.bad_input.clone() {
                        BadInputPolicy::DeadLetter { topic } => {
                            warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason, dead_letter_topic = %topic, "bad input dead-lettered");
                            let n = self.targets.get(&topic).copied().unwrap_or(1);
                            let (partition, _) = partitioning::choose(
                                rec.key.as_deref(),
                                None,
                                rec.value.as_deref(),
                                n,
                            );
                            let mut headers = rec.headers.clone();
                            headers.extend(source_of(&rec).headers());
                            headers.push(Header::new(REASON_HEADER, bytes::Bytes::from(reason)));
                            let out = ProducerRecord {
                                topic,
                                partition: Some(partition),
                                key: rec.key.clone(),
                                value: rec.value.clone(),
                                headers,
                                timestamp: Some(rec.timestamp),
                            };
                            self.send(&entry, &b.topic, out, true).await?;
                        }
                        BadInputPolicy::Skip => {
                            warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason, "bad input skipped");
                            self.summary
                                .topics
                                .entry(b.topic.clone())
                                .or_default()
                                .skipped += 1;
                        }
                        BadInputPolicy::Stop => {
                            warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, %reason, "bad input: stopping");
                            self.tracker.truncate(&entry, rec.offset);
                            self.tracker.seal(&entry);
                            self.positions.insert(tp.clone(), rec.offset);
                            return Err(MirrorError::BadInput {
                                topic: rec.topic.clone(),
                                partition: rec.partition,
                                offset: rec.offset,
                                reason,
                            });
                        }
                    }
                }
            }
        }
        self.tracker.seal(&entry);
        self.tracker.drop_recovered_below(&tp, b.last_offset + 1);
        self.positions.insert(tp, b.last_offset + 1);
        Ok(())
    }

    /// A whole upstream batch of a preserve rule: already in the target (a
    /// pass-through batch of the previous run), or copied as bytes when no
    /// value needs a change. False when it must go record by record.
    async fn whole_batch(
        &mut self,
        b: &RawBatch,
        header: &BatchHeader,
        records: &[ConsumerRecord],
        rule: &TopicRule,
        route: &Route,
    ) -> Result<bool, MirrorError> {
        let tp = TopicPartition::new(b.topic.clone(), b.partition);
        let target = TopicPartition::new(route.target.clone(), b.partition);
        let count = usize::try_from(header.record_count).unwrap_or(0);
        let next = b.last_offset + 1;
        if self.tails.pending(&target) {
            let fp = passthrough::outgoing(&b.bytes)
                .as_deref()
                .and_then(passthrough::fingerprint);
            if let Some(at) = fp.and_then(|fp| self.tails.claim(&tp, &target, &fp)) {
                let entry = self.tracker.begin(&tp, b.base_offset, next);
                self.tracker
                    .landed_batch(&entry, (target, at), count, false);
                self.tracker.seal(&entry);
                self.tracker.drop_recovered_below(&tp, next);
                self.positions.insert(tp, next);
                let c = self.summary.topics.entry(b.topic.clone()).or_default();
                c.already_present += count as u64;
                c.read += count as u64;
                return Ok(true);
            }
            // Not there as a whole batch, nor record by record: the previous
            // run wrote nothing of this upstream partition from here on.
            if !self.tracker.has_recovered_in(&tp, b.base_offset, next) {
                self.tails.source_done(&tp, &target);
            }
        }
        let Some(out) = self
            .pass_through_bytes(b, header, records, rule, &route.target)
            .await
        else {
            return Ok(false);
        };
        let value_bytes: u64 = records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
            .sum();
        let entry = self.tracker.begin(&tp, b.base_offset, next);
        let fut = self
            .producer
            .send_batch(&route.target, b.partition, out)
            .await
            .map_err(|source| MirrorError::Produce {
                topic: route.target.clone(),
                partition: b.partition,
                source,
            })?;
        self.tracker.sent_batch(&entry, count);
        self.tracker.seal(&entry);
        self.tracker.drop_recovered_below(&tp, next);
        self.positions.insert(tp, next);
        let c = self.summary.topics.entry(b.topic.clone()).or_default();
        c.bytes += value_bytes;
        c.read += count as u64;
        let tx = self.acks_tx.clone();
        let upstream_topic = b.topic.clone();
        tokio::spawn(async move {
            let result = fut.await;
            let _ = tx.send(Delivery {
                entry,
                upstream_topic,
                dead_letter: false,
                batch: Some(count),
                result,
            });
        });
        Ok(true)
    }

    /// The bytes to copy for a batch that needs no change, or `None` when
    /// some record needs one (or is bad input, or the header rules it out).
    async fn pass_through_bytes(
        &mut self,
        b: &RawBatch,
        header: &BatchHeader,
        records: &[ConsumerRecord],
        rule: &TopicRule,
        target: &str,
    ) -> Option<bytes::Bytes> {
        if passthrough::header_refusal(header).is_some()
            || i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count)
            || usize::try_from(header.record_count).ok() != Some(records.len())
            || b.bytes.len() > self.max_request_bytes()
        {
            return None;
        }
        let tp = TopicPartition::new(b.topic.clone(), b.partition);
        if self
            .tracker
            .has_recovered_in(&tp, b.base_offset, b.last_offset + 1)
        {
            return None;
        }
        for rec in records {
            // Records that already carry provenance keep the rule that only
            // the mirror's own record-by-record writes carry it.
            if rec.headers.iter().any(|h| h.key == TOPIC_HEADER) {
                return None;
            }
            let size = rec.value.as_ref().map_or(0, bytes::Bytes::len)
                + rec.key.as_ref().map_or(0, bytes::Bytes::len);
            if size > self.cfg.max_record_bytes {
                return None;
            }
            if rule.schema_ids == SchemaIds::Keep {
                continue;
            }
            let Some(value) = rec.value.as_deref() else {
                continue;
            };
            let Framing::Framed { id } = starlog_wire::framing(Some(value)) else {
                return None;
            };
            let subject = rule.subject_of(&rec.topic, target);
            let mapper = self.mapper.as_mut()?;
            let mapping = mapper.map(id, &subject).await.ok()?;
            if mapping.local_id != id {
                return None;
            }
            if self.cfg.validate_bodies
                && body_check::check_with(
                    mapping.schema.walker.as_ref(),
                    &mapping.schema.schema,
                    starlog_wire::body(value),
                )
                .is_err()
            {
                return None;
            }
        }
        passthrough::outgoing(&b.bytes)
    }

    fn max_request_bytes(&self) -> usize {
        (self.cfg.max_record_bytes + 64 * 1024).max(4 << 20)
    }

    async fn send(
        &mut self,
        entry: &EntryId,
        upstream_topic: &str,
        record: ProducerRecord,
        dead_letter: bool,
    ) -> Result<(), MirrorError> {
        let (topic, partition) = (record.topic.clone(), record.partition.unwrap_or(-1));
        let fut = self
            .producer
            .send(record)
            .await
            .map_err(|source| MirrorError::Produce {
                topic,
                partition,
                source,
            })?;
        self.tracker.sent(entry);
        let entry = entry.clone();
        let upstream_topic = upstream_topic.to_owned();
        let tx = self.acks_tx.clone();
        tokio::spawn(async move {
            let result = fut.await;
            // The receiver lives as long as the run; a send after it is
            // gone has nobody left to tell.
            let _ = tx.send(Delivery {
                entry,
                upstream_topic,
                dead_letter,
                batch: None,
                result,
            });
        });
        Ok(())
    }

    /// Decides what happens to one record: where it goes, with which value.
    async fn fate(&mut self, rule: &TopicRule, target: &str, rec: &ConsumerRecord) -> Fate {
        let fate = self.fate_hashed(rule, target, rec).await;
        match fate {
            Fate::Write {
                value, rewritten, ..
            } if rule.partitioning == Partitioning::Preserve => Fate::Write {
                partition: rec.partition,
                value,
                rewritten,
            },
            other => other,
        }
    }

    async fn fate_hashed(&mut self, rule: &TopicRule, target: &str, rec: &ConsumerRecord) -> Fate {
        let size = rec.value.as_ref().map_or(0, bytes::Bytes::len)
            + rec.key.as_ref().map_or(0, bytes::Bytes::len);
        if size > self.cfg.max_record_bytes {
            return Fate::Bad {
                kind: "record too large",
                reason: format!(
                    "record of {size} bytes exceeds max_record_bytes {}",
                    self.cfg.max_record_bytes
                ),
            };
        }
        let n = rule.partitions;
        if rule.schema_ids == SchemaIds::Keep {
            let (partition, _) =
                partitioning::choose(rec.key.as_deref(), None, rec.value.as_deref(), n);
            return Fate::Write {
                partition,
                value: rec.value.clone(),
                rewritten: false,
            };
        }
        let value = match (&rec.value, starlog_wire::framing(rec.value.as_deref())) {
            (Some(v), Framing::Framed { .. }) => v,
            (None, Framing::Null) => {
                // A tombstone has no schema to map; it keeps its meaning.
                let (partition, _) = partitioning::choose(rec.key.as_deref(), None, None, n);
                return Fate::Write {
                    partition,
                    value: None,
                    rewritten: false,
                };
            }
            (_, other) => {
                return Fate::Bad {
                    kind: "value not Confluent-framed",
                    reason: format!("value is not Confluent-framed: {other}"),
                }
            }
        };
        let Framing::Framed { id } = starlog_wire::framing(Some(value)) else {
            return Fate::Bad {
                kind: "value not Confluent-framed",
                reason: "value is not Confluent-framed".into(),
            };
        };
        let subject = rule.subject_of(&rec.topic, target);
        let Some(mapper) = self.mapper.as_mut() else {
            return Fate::Bad {
                kind: "no registry",
                reason: "schema ids must be rewritten but no registries are configured".into(),
            };
        };
        let mapping = match mapper.map(id, &subject).await {
            Ok(m) => m,
            Err(e) => {
                return Fate::Bad {
                    kind: e.kind(),
                    reason: e.to_string(),
                };
            }
        };
        let body = starlog_wire::body(value);
        if self.cfg.validate_bodies {
            if let Err(reason) =
                body_check::check_with(mapping.schema.walker.as_ref(), &mapping.schema.schema, body)
            {
                return Fate::Bad {
                    kind: "not an Avro body",
                    reason: format!("upstream schema id {id}: {reason}"),
                };
            }
        }
        let alert_id = mapping.schema.alert_id.as_ref().and_then(|r| r.read(body));
        let (partition, _) = partitioning::choose(rec.key.as_deref(), alert_id, Some(value), n);
        let out = starlog_wire::with_id(value, mapping.local_id);
        Fate::Write {
            partition,
            value: Some(out),
            rewritten: mapping.local_id != id,
        }
    }
}

fn source_of(rec: &ConsumerRecord) -> Source {
    Source {
        topic: rec.topic.clone(),
        partition: rec.partition,
        offset: rec.offset,
    }
}
