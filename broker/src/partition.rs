//! One served partition: its log, its published high watermark, and the
//! idempotent-producer table that guards appends.
//!
//! The storage log is synchronous; appends run on the blocking pool so a
//! fsync never stalls the reactor. The high watermark is published through a
//! `watch` channel: long-poll fetches wait on it and are woken by appends,
//! never by timers that spin.
//!
//! A partition either appends to its log itself (unreplicated) or proposes
//! through its [`Replicator`] (a replication group's handle, given at open);
//! which one is the partition's own business, not its callers'.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use starlog_replication::{Histogram, ReplicationError};
use starlog_storage::{AppendInfo, DurabilityTicket, PartitionLog, ReadResult, StorageError};
use tokio::sync::{watch, Mutex};

use crate::batch::{self, BatchIdentity};
use crate::producer_state::{ProducerStates, SequenceCheck, PENDING_OFFSET};
use crate::replicator::{Accepted, Replicator};
use crate::watermark::HighWatermark;

/// Result of a produce to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record of the request's batches.
    pub base_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// A produce written to the log but not yet acknowledged.
#[derive(Debug)]
#[must_use = "the append is acknowledged only by Partition::finish"]
pub enum Written {
    /// Written; durability still to be awaited.
    Pending {
        /// Offsets assigned.
        info: AppendInfo,
        /// What to wait for.
        ticket: DurabilityTicket,
        /// Whether the producer table recorded it.
        idempotent: bool,
    },
    /// Proposed to the partition's Raft group; acknowledged once committed.
    Replicated {
        /// The driver's answer to the proposal (which then resolves to the
        /// base offset once a quorum has the batches). Not awaited in the
        /// write stage: the connection reads its next request while the
        /// driver takes this one, so one turn carries many proposals.
        reply: Accepted,
        /// The idempotent batches recorded as pending in the producer table.
        identities: Vec<BatchIdentity>,
        /// When the write stage began (for the stage timings).
        started: Instant,
    },
    /// A retry of a batch already stored at these offsets.
    Duplicate {
        /// The original base offset.
        base_offset: i64,
        /// The original last offset.
        last_offset: i64,
    },
}

/// Longest a retried duplicate waits for its original append to become durable.
const DUPLICATE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a produce to one partition failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The idempotence checks refused the batch.
    #[error("producer sequence check failed: {0}")]
    Sequence(ResponseError),
    /// The records field did not parse as record batches.
    #[error("malformed record batches: {0}")]
    Malformed(String),
    /// A retried batch's original append did not become durable in time.
    #[error("the original append up to offset {last_offset} did not become durable in time")]
    DurabilityTimeout {
        /// Last offset of the original append.
        last_offset: i64,
    },
    /// Replication refused or lost the batch (not the leader, superseded by
    /// a new leader, no quorum in time); the code tells the client to retry
    /// or to refresh its metadata.
    #[error("{message}")]
    Replication {
        /// Kafka error to answer with.
        code: ResponseError,
        /// What happened, naming the partition.
        message: String,
    },
    /// An invariant of the partition did not hold (a bug, never client input):
    /// the operation was refused before it exposed anything, and logged at
    /// error level (see ARCHITECTURE.md's Invariants).
    #[error("{partition}: invariant violated at offset {offset}: {invariant} ({detail})")]
    Invariant {
        /// Which invariant (a fixed phrase).
        invariant: &'static str,
        /// `topic-partition`.
        partition: String,
        /// The offset at fault.
        offset: i64,
        /// The values that disagree.
        detail: String,
    },
    /// The blocking task died (a bug, reported rather than hidden).
    #[error("append task failed: {0}")]
    Task(String),
}

/// Replicated produce, per partition: write stage began → the driver accepted the proposal.
pub static REPLICATED_PRODUCE_PROPOSE: Histogram = Histogram::new();
/// Replicated produce, per partition: write stage began → committed (answerable).
pub static REPLICATED_PRODUCE: Histogram = Histogram::new();

/// A partition as the broker serves it.
#[derive(Debug)]
pub struct Partition {
    log: Arc<PartitionLog>,
    high_watermark: HighWatermark,
    producers: Mutex<ProducerStates>,
    /// The leader term the producer table was rebuilt for (replicated only).
    producers_term: AtomicU64,
    /// Local appends (`None`) or a replication group.
    replicator: Option<Arc<dyn Replicator>>,
}

impl Partition {
    /// Wraps an opened log; the high watermark starts at its end.
    pub fn new(log: PartitionLog) -> Self {
        let end = log.log_end_offset();
        let high_watermark = HighWatermark::new(end);
        let mut producers = ProducerStates::default();
        rebuild_producer_state(&log, &mut producers);
        Self {
            log: Arc::new(log),
            high_watermark,
            producers: Mutex::new(producers),
            producers_term: AtomicU64::new(0),
            replicator: None,
        }
    }

    /// A replicated partition over its group's log: appends are proposed
    /// through `replicator`, and the high watermark is the commit index its
    /// driver publishes into `high_watermark`.
    pub fn replicated(
        log: Arc<PartitionLog>,
        high_watermark: HighWatermark,
        replicator: Arc<dyn Replicator>,
    ) -> Self {
        Self {
            log,
            high_watermark,
            producers: Mutex::new(ProducerStates::strict()),
            producers_term: AtomicU64::new(0),
            replicator: Some(replicator),
        }
    }

    /// Whether this broker is the partition's only replica and so its
    /// leader (an unreplicated partition).
    pub fn leads_alone(&self) -> bool {
        self.replicator.is_none()
    }

    /// Whether retention and DeleteRecords trim this log directly (an
    /// unreplicated partition); a replicated log is trimmed only through its
    /// group.
    pub fn trims_locally(&self) -> bool {
        self.replicator.is_none()
    }

    /// The leader epoch ListOffsets reports: 0 for an unreplicated
    /// partition, the leader's term for a replicated one (-1 when this
    /// broker does not lead it).
    pub fn leader_epoch(&self) -> i32 {
        match &self.replicator {
            Some(r) => r
                .leader_term()
                .map_or(-1, |t| i32::try_from(t).unwrap_or(i32::MAX)),
            None => 0,
        }
    }

    /// `NOT_LEADER_OR_FOLLOWER` when this broker does not lead the
    /// (replicated) partition: clients then refresh their metadata.
    pub fn leader_error(&self) -> Option<ResponseError> {
        let r = self.replicator.as_ref()?;
        r.leader_term()
            .is_none()
            .then_some(ResponseError::NotLeaderOrFollower)
    }

    /// One retention pass at `now` (milliseconds): an unreplicated log
    /// deletes its expired segments; a replicated one hands the retention
    /// point to its group, which trims log and translation together.
    pub fn apply_retention(
        &self,
        now: i64,
    ) -> Result<Option<starlog_storage::RetentionOutcome>, StorageError> {
        match &self.replicator {
            Some(r) => {
                if let Some(offset) = self.log.retention_point(now) {
                    r.compact(offset);
                }
                Ok(None)
            }
            None => self.log.apply_retention(now).map(Some),
        }
    }

    /// The underlying log.
    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The offset up to which consumers may read.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// A receiver woken whenever the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Moves the high watermark forward to `end` (never back: concurrent
    /// appends may finish their durability wait out of order, and the later
    /// one's fsync covered the earlier one's bytes). Called once `end` is
    /// durable under the flush policy.
    ///
    /// Invariant: the high watermark never passes the log's end (what is not
    /// even written cannot be durable). A violation publishes nothing and
    /// fails the produce, so it is not acknowledged.
    pub(crate) fn publish(&self, end: i64) -> Result<(), AppendError> {
        let log_end = self.log.log_end_offset();
        if end > log_end {
            return Err(self.violated(
                "the high watermark never passes the log end",
                end,
                format!("publishing {end} but the log ends at {log_end}"),
            ));
        }
        self.high_watermark.publish(end);
        Ok(())
    }

    /// An [`AppendError::Invariant`] for this partition, logged at error level.
    fn violated(&self, invariant: &'static str, offset: i64, detail: String) -> AppendError {
        let partition = format!("{}-{}", self.log.topic(), self.log.partition());
        tracing::error!(%partition, offset, invariant, %detail, "partition invariant violated; operation refused");
        AppendError::Invariant {
            invariant,
            partition,
            offset,
            detail,
        }
    }

    /// Appends the record batches of one produce request and waits until
    /// they meet the flush policy.
    pub async fn append(&self, records: Bytes, leader_epoch: i32) -> Result<Appended, AppendError> {
        let written = self.write(records, leader_epoch).await?;
        self.finish(written).await
    }

    /// The first stage of [`Partition::append`]: idempotence checks and the
    /// write, in the order calls are made. Nothing is acknowledged yet; a
    /// connection may start its next request's write while this one's
    /// durability wait ([`Partition::finish`]) is under way.
    pub async fn write(&self, records: Bytes, leader_epoch: i32) -> Result<Written, AppendError> {
        let identities =
            batch::identities(&records).map_err(|e| AppendError::Malformed(e.to_string()))?;
        if let Some(replicator) = &self.replicator {
            return self
                .write_replicated(replicator.as_ref(), records, identities)
                .await;
        }
        if identities.iter().all(|b| b.producer_id < 0) {
            let (info, ticket) = self.write_blocking(records, leader_epoch).await?;
            return Ok(Written::Pending {
                info,
                ticket,
                idempotent: false,
            });
        }
        let mut producers = self.producers.lock().await;
        if let Some(duplicate) = check_sequences(&producers, &identities)? {
            return Ok(duplicate);
        }
        // Sequence checks and the write are ordered under the producer lock;
        // the wait for the flush policy is not, so other appends to this
        // partition share the same fsync.
        let (info, ticket) = self.write_blocking(records, leader_epoch).await?;
        let mut base = info.base_offset;
        for id in &identities {
            if id.producer_id >= 0 {
                producers.record(id, base);
            }
            base += i64::from(id.last_offset_delta) + 1;
        }
        Ok(Written::Pending {
            info,
            ticket,
            idempotent: true,
        })
    }

    /// The second stage: waits for the flush policy, then publishes the new
    /// high watermark.
    pub async fn finish(&self, written: Written) -> Result<Appended, AppendError> {
        let (info, ticket, idempotent) = match written {
            Written::Replicated {
                reply,
                identities,
                started,
            } => return self.finish_replicated(reply, identities, started).await,
            Written::Duplicate {
                base_offset,
                last_offset,
            } => {
                // The original append may still be waiting for its fsync:
                // answer the retry only once the high watermark covers it.
                let mut rx = self.subscribe();
                let covered =
                    tokio::time::timeout(DUPLICATE_WAIT, rx.wait_for(|hw| *hw > last_offset)).await;
                return match covered {
                    Ok(Ok(_)) => Ok(Appended {
                        base_offset,
                        log_start_offset: self.log.log_start_offset(),
                    }),
                    _ => Err(AppendError::DurabilityTimeout { last_offset }),
                };
            }
            Written::Pending {
                info,
                ticket,
                idempotent,
            } => (info, ticket, idempotent),
        };
        let log = Arc::clone(&self.log);
        let durable = tokio::task::spawn_blocking(move || log.wait_durable(ticket))
            .await
            .map_err(|e| AppendError::Task(e.to_string()))
            .and_then(|r| r.map_err(AppendError::from));
        if let Err(e) = durable {
            if idempotent {
                // Never answer a retry of a batch that may not be on disk as
                // a duplicate: forget what the table learned.
                self.producers.lock().await.clear();
            }
            return Err(e);
        }
        self.publish(info.last_offset + 1)?;
        Ok(self.appended(&info))
    }

    /// The replicated write stage: idempotence checks against the table of
    /// the current leader term, then a proposal to the Raft group. Batches
    /// are recorded in the table as pending (their offsets come with the
    /// commit), so an in-flight retry is told to retry again rather than
    /// being appended twice.
    async fn write_replicated(
        &self,
        replicator: &dyn Replicator,
        records: Bytes,
        identities: Vec<BatchIdentity>,
    ) -> Result<Written, AppendError> {
        let started = Instant::now();
        let name = || format!("{}-{}", self.log.topic(), self.log.partition());
        let not_leader = || AppendError::Replication {
            code: ResponseError::NotLeaderOrFollower,
            message: format!("{}: this broker does not lead the partition", name()),
        };
        let term = replicator.leader_term().ok_or_else(not_leader)?;
        let mut producers = self.producers.lock().await;
        if self.producers_term.load(Ordering::Acquire) != term {
            // New leadership: what earlier leaders accepted is in the log.
            let log = Arc::clone(&self.log);
            *producers = tokio::task::spawn_blocking(move || {
                let mut table = ProducerStates::strict();
                rebuild_producer_state(&log, &mut table);
                table
            })
            .await
            .map_err(|e| AppendError::Task(e.to_string()))?;
            self.producers_term.store(term, Ordering::Release);
        }
        if let Some(duplicate) = check_sequences(&producers, &identities)? {
            if let Written::Duplicate {
                base_offset: PENDING_OFFSET,
                ..
            } = duplicate
            {
                return Err(AppendError::Replication {
                    code: ResponseError::NotEnoughReplicasAfterAppend,
                    message: format!(
                        "{}: the original of this retried batch is not committed yet",
                        name()
                    ),
                });
            }
            return Ok(duplicate);
        }
        let reply = replicator
            .propose(records, term)
            .map_err(|_| not_leader())?;
        // Recorded as pending before the driver answers: a refusal is seen
        // in the finish stage, which then forgets the table (as for any
        // failed proposal).
        let idempotent: Vec<BatchIdentity> = identities
            .into_iter()
            .filter(|id| id.producer_id >= 0)
            .collect();
        for id in &idempotent {
            producers.record(id, PENDING_OFFSET);
        }
        Ok(Written::Replicated {
            reply,
            identities: idempotent,
            started,
        })
    }

    async fn finish_replicated(
        &self,
        reply: Accepted,
        identities: Vec<BatchIdentity>,
        started: Instant,
    ) -> Result<Appended, AppendError> {
        let name = format!("{}-{}", self.log.topic(), self.log.partition());
        let wait = self
            .replicator
            .as_ref()
            .map_or(std::time::Duration::from_secs(30), |r| r.commit_wait());
        let committed = async {
            let proposal = reply.await.map_err(|_| AppendError::Replication {
                code: ResponseError::NotLeaderOrFollower,
                message: format!("{name}: the raft driver stopped"),
            })?;
            let proposal = proposal.map_err(|e| replication_error(&name, &e))?;
            REPLICATED_PRODUCE_PROPOSE.observe(started.elapsed());
            proposal.await.map_err(|e| replication_error(&name, &e))
        };
        let outcome = match tokio::time::timeout(wait, committed).await {
            Ok(result) => result,
            Err(_) => Err(AppendError::Replication {
                code: ResponseError::RequestTimedOut,
                message: format!("{name}: no quorum within {} ms", wait.as_millis()),
            }),
        };
        let mut producers = self.producers.lock().await;
        match outcome {
            Ok(base_offset) => {
                REPLICATED_PRODUCE.observe(started.elapsed());
                let mut base = base_offset;
                for id in &identities {
                    producers.settle(id, base);
                    base += i64::from(id.last_offset_delta) + 1;
                }
                Ok(Appended {
                    base_offset,
                    log_start_offset: self.log.log_start_offset(),
                })
            }
            Err(e) => {
                // The batch may or may not be committed later: forget what
                // the table learned and rebuild it from the log next time.
                producers.clear();
                self.producers_term.store(0, Ordering::Release);
                Err(e)
            }
        }
    }

    async fn write_blocking(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> Result<(AppendInfo, DurabilityTicket), AppendError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.append_unsynced(&records, leader_epoch))
            .await
            .map_err(|e| AppendError::Task(e.to_string()))?
            .map_err(AppendError::from)
    }

    fn appended(&self, info: &AppendInfo) -> Appended {
        Appended {
            base_offset: info.base_offset,
            log_start_offset: self.log.log_start_offset(),
        }
    }

    /// Reads whole batches from `offset`, bounded by the high watermark. For
    /// the broker's own readers (the metadata applier, pipelines), which read
    /// followers too; a client's Fetch goes through [`Partition::fetch`].
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, AppendError> {
        self.read_below(offset, max_bytes, self.high_watermark())
            .await
    }

    async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        hw: i64,
    ) -> Result<ReadResult, AppendError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.read(offset, max_bytes, hw))
            .await
            .map_err(|e| AppendError::Task(e.to_string()))?
            .map_err(AppendError::from)
    }

    /// The Fetch read path: whole batches from `offset` up to the high
    /// watermark, served only by the partition's leader.
    ///
    /// Invariant: a follower never serves a fetch. The handler checks
    /// leadership first; this check is on the read itself, so it holds for
    /// any caller. Leadership may move between the handler's check and this
    /// one (a legitimate race), so it answers `NOT_LEADER_OR_FOLLOWER`, as
    /// the handler does, rather than logging a violation.
    ///
    /// Invariant: no byte beyond the high watermark is returned (the high
    /// watermark always falls between batches, so the last batch read ends
    /// at or before it). A violation returns nothing and is logged.
    pub async fn fetch(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, AppendError> {
        if let Some(code) = self.leader_error() {
            tracing::debug!(
                topic = self.log.topic(),
                partition = self.log.partition(),
                offset,
                "fetch refused on a follower"
            );
            return Err(AppendError::Replication {
                code,
                message: format!(
                    "{}-{}: this broker does not lead the partition",
                    self.log.topic(),
                    self.log.partition()
                ),
            });
        }
        let hw = self.high_watermark();
        let read = self.read_below(offset, max_bytes, hw).await?;
        if !read.is_empty() && read.next_offset > hw {
            return Err(self.violated(
                "a fetch returns nothing beyond the high watermark",
                read.next_offset,
                format!(
                    "read from {offset} returned batches up to {} but the high watermark is {hw}",
                    read.next_offset
                ),
            ));
        }
        Ok(read)
    }
}

/// The idempotence checks of one request's batches: `Some(Duplicate)` when
/// the request retries batches already stored (their offsets; a base of
/// [`PENDING_OFFSET`] when the original is not committed yet), `None` when
/// it may be appended, an error when the sequence is refused. Batches
/// without a producer id are not checked.
fn check_sequences(
    producers: &ProducerStates,
    identities: &[BatchIdentity],
) -> Result<Option<Written>, AppendError> {
    let mut duplicate_base = None;
    for (i, id) in identities
        .iter()
        .enumerate()
        .filter(|(_, id)| id.producer_id >= 0)
    {
        match producers.check(id) {
            SequenceCheck::Append if duplicate_base.is_none() => {}
            SequenceCheck::Duplicate { base_offset } if i == 0 => {
                duplicate_base = Some(base_offset)
            }
            SequenceCheck::Duplicate { .. } if duplicate_base.is_some() => {}
            SequenceCheck::Reject(e) => return Err(AppendError::Sequence(e)),
            _ => {
                return Err(AppendError::Sequence(
                    ResponseError::OutOfOrderSequenceNumber,
                ))
            }
        }
    }
    Ok(duplicate_base.map(|base_offset| {
        let count: i64 = identities
            .iter()
            .map(|id| i64::from(id.last_offset_delta) + 1)
            .sum();
        Written::Duplicate {
            base_offset,
            last_offset: base_offset + count - 1,
        }
    }))
}

/// The Kafka error for a replication failure on partition `name`.
fn replication_error(name: &str, e: &ReplicationError) -> AppendError {
    let code = match e {
        ReplicationError::InvalidRecords { .. } => ResponseError::CorruptMessage,
        ReplicationError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        ReplicationError::EmptyProposal { .. } => ResponseError::InvalidRecord,
        ReplicationError::GroupFailed { .. } => ResponseError::KafkaStorageError,
        _ => ResponseError::NotLeaderOrFollower,
    };
    AppendError::Replication {
        code,
        message: format!("{name}: {e}"),
    }
}

/// About how many bytes of the log's tail are scanned to rebuild idempotence state.
const PRODUCER_REBUILD_BYTES: u64 = 64 * 1024 * 1024;

/// Rebuilds the producer table from the newest batches of the log, so a
/// producer retrying across a broker restart (or a leader change) still gets
/// its duplicates recognised and its sequence continued. The scan always
/// runs to the log end; it starts far enough back to cover about
/// `PRODUCER_REBUILD_BYTES` of the tail, estimated from the log's mean
/// bytes per offset (large alerts mean few offsets, small records many).
fn rebuild_producer_state(log: &PartitionLog, producers: &mut ProducerStates) {
    let end = log.log_end_offset();
    let start = log.log_start_offset();
    let records = u64::try_from(end - start).unwrap_or(0).max(1);
    let bytes_per_offset = (log.size_bytes() / records).max(1);
    let back = i64::try_from(PRODUCER_REBUILD_BYTES / bytes_per_offset + 1).unwrap_or(i64::MAX);
    let mut offset = end.saturating_sub(back).max(start);
    while offset < end {
        let Ok(read) = log.read(offset, 4 * 1024 * 1024, end) else {
            return;
        };
        let mut advanced = false;
        for chunk in &read.chunks {
            let Ok(headers) = batch::headers(chunk) else {
                return;
            };
            for h in headers {
                if h.identity.producer_id >= 0 {
                    producers.record(&h.identity, h.base_offset);
                }
                let next = h.base_offset + i64::from(h.identity.last_offset_delta) + 1;
                if next > offset {
                    offset = next;
                    advanced = true;
                }
            }
        }
        if !advanced {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use starlog_storage::{FlushPolicy, LogConfig};

    fn batch(producer_id: i64, first_seq: i32, n: i32) -> Bytes {
        records(producer_id, first_seq, n, &[7u8; 512])
    }

    /// One record of `value_len` bytes.
    fn sized(producer_id: i64, first_seq: i32, value_len: usize) -> Bytes {
        records(
            producer_id,
            first_seq,
            1,
            &vec![(first_seq % 251) as u8; value_len],
        )
    }

    /// A v2 batch of `n` records with this value (sequences from
    /// `first_seq` when the producer is idempotent).
    fn records(producer_id: i64, first_seq: i32, n: i32, value: &[u8]) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: if producer_id >= 0 {
                    first_seq + i
                } else {
                    i - 1
                },
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::copy_from_slice(value)),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    /// Alert-sized records: well over the rebuild budget of bytes before the
    /// newest batch. The reopened table must still know the last sequence
    /// (it once stopped scanning 64 MiB in and refused the next batch).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_producer_table_is_rebuilt_from_the_newest_batches_of_a_large_log() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), "t", 0, config.clone()).unwrap();
        let partition = Partition::new(log);
        // 1,500 batches of 64 KiB: about 96 MiB.
        for seq in 0..1_500 {
            partition.append(sized(7, seq, 64 * 1024), 0).await.unwrap();
        }
        partition.log().flush().unwrap();
        drop(partition);
        let partition = Partition::new(PartitionLog::open(dir.path(), "t", 0, config).unwrap());
        // The last batch is recognised as a retry, and the next one continues.
        let retry = partition
            .write(sized(7, 1_499, 64 * 1024), 0)
            .await
            .unwrap();
        assert!(
            matches!(
                retry,
                Written::Duplicate {
                    base_offset: 1_499,
                    ..
                }
            ),
            "{retry:?}"
        );
        let next = partition
            .append(sized(7, 1_500, 64 * 1024), 0)
            .await
            .unwrap();
        assert_eq!(next.base_offset, 1_500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_keep_the_high_watermark_monotonic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Always,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
        let partition = Arc::new(Partition::new(log));
        let mut rx = partition.subscribe();
        let watcher = tokio::spawn(async move {
            let mut seen = vec![*rx.borrow_and_update()];
            while rx.changed().await.is_ok() {
                seen.push(*rx.borrow_and_update());
                if seen.last() == Some(&(8 * 20 * 3)) {
                    break;
                }
            }
            seen
        });
        let mut tasks = Vec::new();
        for producer in 0..8i64 {
            let p = Arc::clone(&partition);
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    // Half the producers are idempotent, half are not.
                    let pid = if producer % 2 == 0 { producer } else { -1 };
                    p.append(batch(pid, i * 3, 3), 0).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let seen = watcher.await.unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(partition.high_watermark(), 480);
        assert_eq!(partition.log().log_end_offset(), 480);
    }

    /// A replication group that answers proposals as a test tells it to.
    #[derive(Debug, Default)]
    struct FakeReplicator {
        /// This broker's term when it leads.
        term: parking_lot::Mutex<Option<u64>>,
        /// The outcome of each next proposal (`None`: the driver is gone).
        outcomes: parking_lot::Mutex<std::collections::VecDeque<Option<FakeOutcome>>>,
        /// (records, term) of every proposal.
        proposed: parking_lot::Mutex<Vec<(Bytes, u64)>>,
        compacted: parking_lot::Mutex<Vec<i64>>,
    }

    #[derive(Debug)]
    enum FakeOutcome {
        /// The driver refuses the proposal.
        Refused(ReplicationError),
        /// Accepted; then committed at this offset, or lost.
        Committed(Result<i64, ReplicationError>),
    }

    impl Replicator for FakeReplicator {
        fn leader_term(&self) -> Option<u64> {
            *self.term.lock()
        }

        fn propose(&self, records: Bytes, term: u64) -> Result<Accepted, DriverGone> {
            self.proposed.lock().push((records, term));
            let outcome = self
                .outcomes
                .lock()
                .pop_front()
                .flatten()
                .ok_or(DriverGone)?;
            Ok(Accepted::new(async move {
                Ok(match outcome {
                    FakeOutcome::Refused(e) => Err(e),
                    FakeOutcome::Committed(r) => {
                        Ok(Box::pin(async move { r }) as crate::replicator::Committed)
                    }
                })
            }))
        }

        fn commit_wait(&self) -> std::time::Duration {
            std::time::Duration::from_secs(5)
        }

        fn compact(&self, offset: i64) {
            self.compacted.lock().push(offset);
        }
    }

    use crate::replicator::DriverGone;
    use starlog_replication::GroupId;

    fn replicated(fake: &Arc<FakeReplicator>) -> (tempfile::TempDir, Partition, HighWatermark) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), "t", 0, LogConfig::default()).unwrap();
        let hw = HighWatermark::new(0);
        let partition = Partition::replicated(
            Arc::new(log),
            hw.clone(),
            Arc::clone(fake) as Arc<dyn Replicator>,
        );
        (dir, partition, hw)
    }

    fn not_leader() -> ReplicationError {
        ReplicationError::NotLeader {
            group: GroupId(1),
            leader: Some(2),
        }
    }

    fn code(e: AppendError) -> ResponseError {
        match e {
            AppendError::Replication { code, .. } => code,
            other => panic!("not a replication error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_replicated_produce_resolves_to_the_committed_offset_and_a_retry_is_a_duplicate() {
        let fake = Arc::new(FakeReplicator::default());
        *fake.term.lock() = Some(3);
        fake.outcomes
            .lock()
            .push_back(Some(FakeOutcome::Committed(Ok(42))));
        let (_dir, partition, hw) = replicated(&fake);
        assert!(!partition.leads_alone() && !partition.trims_locally());
        assert_eq!(partition.leader_epoch(), 3);
        assert_eq!(partition.leader_error(), None);
        let sent = batch(9, 0, 2);
        let appended = partition.append(sent.clone(), 0).await.unwrap();
        assert_eq!(appended.base_offset, 42);
        // Proposed as sent, in the term the producer checks were made in.
        assert_eq!(fake.proposed.lock().as_slice(), &[(sent.clone(), 3)]);
        // The high watermark is the driver's to move, through its handle.
        assert_eq!(partition.high_watermark(), 0);
        hw.publish(44);
        assert_eq!(partition.high_watermark(), 44);
        // The producer table settled the batch at its committed offset.
        let retry = partition.write(sent, 0).await.unwrap();
        assert!(
            matches!(
                retry,
                Written::Duplicate {
                    base_offset: 42,
                    last_offset: 43
                }
            ),
            "{retry:?}"
        );
        assert_eq!(fake.proposed.lock().len(), 1);
        // Retention goes to the group, never straight to the log.
        assert!(matches!(partition.apply_retention(i64::MAX), Ok(None)));
    }

    fn invariant(e: AppendError) -> &'static str {
        match e {
            AppendError::Invariant { invariant, .. } => invariant,
            other => panic!("not an invariant violation: {other:?}"),
        }
    }

    /// Invariant: the high watermark never passes the log end. Publishing
    /// beyond it is refused and moves nothing.
    #[tokio::test]
    async fn a_high_watermark_beyond_the_log_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), "t", 0, LogConfig::default()).unwrap();
        let partition = Partition::new(log);
        partition.append(batch(-1, 0, 3), 0).await.unwrap();
        assert_eq!(partition.high_watermark(), 3);
        let e = partition.publish(4).unwrap_err();
        assert_eq!(invariant(e), "the high watermark never passes the log end");
        assert_eq!(partition.high_watermark(), 3);
        assert_eq!(
            invariant(partition.publish(9).unwrap_err()),
            "the high watermark never passes the log end"
        );
        partition.publish(3).unwrap();
    }

    /// Invariant: a fetch returns nothing beyond the high watermark. A high
    /// watermark inside a batch (the state a bug would leave) makes the
    /// fetch fail instead of handing out the uncommitted rest of the batch.
    #[tokio::test]
    async fn a_fetch_that_would_pass_the_high_watermark_is_refused() {
        let fake = Arc::new(FakeReplicator::default());
        *fake.term.lock() = Some(1);
        let (_dir, partition, hw) = replicated(&fake);
        partition.log().append(&batch(-1, 0, 3), 1).unwrap();
        partition.log().append(&batch(-1, 0, 2), 1).unwrap();
        hw.publish(3);
        let read = partition.fetch(0, 1 << 20).await.unwrap();
        assert_eq!((read.chunks.len(), read.next_offset), (1, 3));
        hw.publish(4);
        let e = partition.fetch(0, 1 << 20).await.unwrap_err();
        assert_eq!(
            invariant(e),
            "a fetch returns nothing beyond the high watermark"
        );
        // A read that returns nothing has nothing to check (the handler
        // answers OFFSET_OUT_OF_RANGE beyond the high watermark first).
        assert!(partition.fetch(5, 1 << 20).await.unwrap().is_empty());
        hw.publish(5);
        assert_eq!(partition.fetch(0, 1 << 20).await.unwrap().next_offset, 5);
    }

    /// Invariant: a follower never serves a fetch, checked on the read path
    /// itself; the broker's own readers (the metadata applier) still read.
    #[tokio::test]
    async fn a_follower_serves_no_fetch() {
        let fake = Arc::new(FakeReplicator::default());
        let (_dir, partition, hw) = replicated(&fake);
        partition.log().append(&batch(-1, 0, 3), 1).unwrap();
        hw.publish(3);
        let e = partition.fetch(0, 1 << 20).await.unwrap_err();
        assert_eq!(code(e), ResponseError::NotLeaderOrFollower);
        assert_eq!(partition.read(0, 1 << 20).await.unwrap().next_offset, 3);
        *fake.term.lock() = Some(2);
        assert_eq!(partition.fetch(0, 1 << 20).await.unwrap().next_offset, 3);
    }

    #[tokio::test]
    async fn a_follower_or_a_leader_that_steps_down_answers_not_leader() {
        let fake = Arc::new(FakeReplicator::default());
        let (_dir, partition, _hw) = replicated(&fake);
        // Not the leader: refused before anything is proposed.
        assert_eq!(partition.leader_epoch(), -1);
        assert_eq!(
            partition.leader_error(),
            Some(ResponseError::NotLeaderOrFollower)
        );
        let e = partition.append(batch(-1, 0, 1), 0).await.unwrap_err();
        assert_eq!(code(e), ResponseError::NotLeaderOrFollower);
        assert!(fake.proposed.lock().is_empty());

        *fake.term.lock() = Some(5);
        {
            let mut outcomes = fake.outcomes.lock();
            // Stepped down between the check and the driver's turn.
            outcomes.push_back(Some(FakeOutcome::Refused(not_leader())));
            // Accepted, then superseded by a new leader before a quorum.
            outcomes.push_back(Some(FakeOutcome::Committed(Err(not_leader()))));
            // The driver thread is gone.
            outcomes.push_back(None);
            // A batch the group cannot take.
            outcomes.push_back(Some(FakeOutcome::Committed(Err(
                ReplicationError::BatchTooLarge {
                    group: GroupId(1),
                    batch_index: 0,
                    size: 10,
                    max: 1,
                },
            ))));
        }
        for want in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::NotLeaderOrFollower,
            ResponseError::NotLeaderOrFollower,
            ResponseError::MessageTooLarge,
        ] {
            let e = partition.append(batch(4, 0, 1), 0).await.unwrap_err();
            assert_eq!(code(e), want);
        }
        // Each failure forgot the producer table: sequence 0 is still the
        // next one, and now it commits.
        fake.outcomes
            .lock()
            .push_back(Some(FakeOutcome::Committed(Ok(0))));
        let ok = partition.append(batch(4, 0, 1), 0).await.unwrap();
        assert_eq!(ok.base_offset, 0);
    }
}
