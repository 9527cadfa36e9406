//! [`PartitionLog`]: the append-only log of one topic partition, made of segments.
//!
//! Concurrency model: one writer at a time (the `writer` mutex serialises appends, rolls,
//! truncation and retention); readers never take it. Readers take the `segments` read lock only
//! for the duration of a lookup and copy (sealed segments hand out zero-copy slices of a memory
//! map that outlive the lock). The log end and start offsets are atomics published after the
//! bytes they cover are readable. Waiting for durability (fdatasync) happens after the writer
//! mutex is released, so concurrent appends coalesce into one sync (see `durability`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::checkpoint;
use crate::clean_shutdown;
use crate::config::LogConfig;
use crate::durability::Durability;
use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::recovery::NO_TIMESTAMP;
use crate::segment::{file_name, PendingBatch, Segment, Truncation};
use starlog_wire::{patch_base_offset_and_epoch, validate_batch};

/// Names a written append whose durability is still to be awaited with
/// [`PartitionLog::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the append is not durable until wait_durable returns"]
pub struct DurabilityTicket(u64);

/// What [`PartitionLog::append`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Largest `maxTimestamp` among the appended batches.
    pub max_timestamp: i64,
    /// Number of records.
    pub record_count: u32,
    /// Number of batches.
    pub batches: u32,
}

/// Bytes returned by [`PartitionLog::read`].
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Whole batches, exactly as stored; concatenated they form a Fetch `records` field.
    pub chunks: Vec<Bytes>,
    /// Log start offset when the read began.
    pub log_start_offset: i64,
    /// Log end offset when the read began (no batch at or after it is returned).
    pub log_end_offset: i64,
    /// Offset after the last batch returned (the offset read from when none was).
    pub next_offset: i64,
}

impl ReadResult {
    /// Total bytes in `chunks`.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }
}

/// What [`PartitionLog::apply_retention`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Whole segments deleted.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
    /// Log start offset afterwards.
    pub new_log_start_offset: i64,
}

/// A torn or corrupt tail cut off while opening the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTail {
    /// Segment file that was truncated.
    pub segment: PathBuf,
    /// Byte position of the cut.
    pub position: u64,
    /// Bytes removed from that segment.
    pub bytes_dropped: u64,
    /// First offset no longer present (the log end after the cut).
    pub first_dropped_offset: i64,
    /// Last offset seen in the dropped bytes, if any header there was readable.
    pub last_dropped_offset: Option<i64>,
    /// Later segments deleted because they followed the cut.
    pub segments_deleted: usize,
    /// What was wrong.
    pub reason: String,
}

#[derive(Debug, Default)]
struct WriterState {
    scratch: Vec<u8>,
}

/// The log of one partition. See the module docs for the concurrency model.
#[derive(Debug)]
pub struct PartitionLog {
    topic: String,
    partition: i32,
    dir: PathBuf,
    config: RwLock<LogConfig>,
    writer: Mutex<WriterState>,
    segments: RwLock<Vec<Arc<Segment>>>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    size: AtomicU64,
    durability: Durability,
    recovered: Vec<RecoveredTail>,
    skip_clean_close: bool,
}

/// Base offsets of the segments in `dir`, sorted; removes leftovers of interrupted operations
/// (`*.tmp` files and index files without a log).
fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("read dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("read dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            remove_if_exists(&entry.path())?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match ext {
            "log" => bases.push(base),
            "index" | "timeindex" => index_files.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            remove_if_exists(&path)?;
        }
    }
    Ok(bases)
}

fn index_interval(config: &LogConfig) -> u64 {
    u64::from(config.index_interval_bytes.max(1))
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir` (`<data_dir>/<topic>-<partition>`),
    /// recovering it: the active segment is scanned and a torn or corrupt tail truncated and
    /// reported in one `warn` line; sealed segments with missing or inconsistent indexes are
    /// rescanned and their indexes rebuilt.
    pub fn open(
        dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))?;
        let interval = index_interval(&config);
        let start_checkpoint = checkpoint::read(dir)?;
        let clean = clean_shutdown::take(dir)?;
        let mut recovered = Vec::new();
        let mut segments: Vec<Arc<Segment>> = Vec::new();
        // Each restart deletes at least one segment, so this terminates.
        'restart: loop {
            segments.clear();
            let bases = list_segments(dir)?;
            for (i, &base) in bases.iter().enumerate() {
                let active = i + 1 == bases.len();
                let trust = active && clean.is_some_and(|c| c.matches(dir, base));
                let (seg, truncation) = Segment::open(dir, base, active, trust, interval)?;
                if let Some(prev) = segments.last() {
                    if base < prev.next_offset() {
                        return Err(StorageError::Corrupt {
                            path: seg.log_path().to_owned(),
                            position: 0,
                            reason: format!(
                                "segment starts at offset {base} but the previous one ends at {}",
                                prev.next_offset()
                            ),
                        });
                    }
                    if base > prev.next_offset() {
                        // The previous segment lost its tail (it ends on a batch boundary, so
                        // its own scan saw nothing wrong): the rest no longer continues the log.
                        drop(seg);
                        let report =
                            Self::drop_after_gap(topic, partition, dir, prev, &bases[i..])?;
                        recovered.push(report);
                        continue 'restart;
                    }
                }
                if let Some(t) = truncation {
                    let later = &bases[i + 1..];
                    for &b in later {
                        for ext in ["log", "index", "timeindex"] {
                            remove_if_exists(&dir.join(file_name(b, ext)))?;
                        }
                    }
                    let report = Self::report_truncation(topic, partition, &seg, &t, later.len());
                    recovered.push(report);
                    if !later.is_empty() {
                        sync_dir(dir)?;
                        continue 'restart;
                    }
                }
                segments.push(Arc::new(seg));
            }
            break;
        }
        if segments.is_empty() {
            let base = start_checkpoint.unwrap_or(0);
            segments.push(Arc::new(Segment::create(dir, base)?));
        }
        // Invariant: `segments` is non-empty here (created above if it was empty).
        let (first_base, log_end) = match (segments.first(), segments.last()) {
            (Some(f), Some(l)) => (f.base_offset(), l.next_offset()),
            _ => unreachable!("segments is non-empty"),
        };
        let log_start = start_checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        // Segments entirely below the start are leftovers of an interrupted deletion.
        while segments.len() > 1 && segments[0].next_offset() <= log_start {
            segments.remove(0).delete_files()?;
        }
        let size = segments.iter().map(|s| s.len()).sum();
        let active = segments
            .last()
            .map(|s| (s.file(), s.log_path().to_owned()))
            .unwrap_or_else(|| unreachable!("segments is non-empty"));
        Ok(Self {
            topic: topic.to_owned(),
            partition,
            dir: dir.to_owned(),
            config: RwLock::new(config),
            writer: Mutex::new(WriterState::default()),
            segments: RwLock::new(segments),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            size: AtomicU64::new(size),
            durability: Durability::new(active.0, active.1),
            recovered,
            skip_clean_close: false,
        })
    }

    /// Deletes the segments `bases` that follow a gap after `prev`, reporting them.
    fn drop_after_gap(
        topic: &str,
        partition: i32,
        dir: &Path,
        prev: &Segment,
        bases: &[i64],
    ) -> Result<RecoveredTail, StorageError> {
        let mut bytes_dropped = 0;
        for &b in bases {
            for ext in ["log", "index", "timeindex"] {
                let path = dir.join(file_name(b, ext));
                if ext == "log" {
                    bytes_dropped += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                }
                remove_if_exists(&path)?;
            }
        }
        sync_dir(dir)?;
        let reason = format!(
            "segment {} ends at offset {} but the next segment starts at {}",
            prev.log_path().display(),
            prev.next_offset(),
            bases.first().copied().unwrap_or_default()
        );
        tracing::warn!(
            topic,
            partition,
            segment = %prev.log_path().display(),
            bytes_dropped,
            first_dropped_offset = prev.next_offset(),
            later_segments_deleted = bases.len(),
            %reason,
            "offset gap between segments; dropped the segments after it"
        );
        Ok(RecoveredTail {
            segment: prev.log_path().to_owned(),
            position: prev.len(),
            bytes_dropped,
            first_dropped_offset: prev.next_offset(),
            last_dropped_offset: None,
            segments_deleted: bases.len(),
            reason,
        })
    }

    fn report_truncation(
        topic: &str,
        partition: i32,
        seg: &Segment,
        t: &Truncation,
        later_segments: usize,
    ) -> RecoveredTail {
        tracing::warn!(
            topic,
            partition,
            segment = %seg.log_path().display(),
            position = t.fault.position,
            bytes_dropped = t.bytes_dropped,
            first_dropped_offset = t.next_offset,
            last_dropped_offset = ?t.dropped_last_offset,
            later_segments_deleted = later_segments,
            reason = %t.fault.reason,
            "truncated torn or corrupt log tail"
        );
        RecoveredTail {
            segment: seg.log_path().to_owned(),
            position: t.fault.position,
            bytes_dropped: t.bytes_dropped,
            first_dropped_offset: t.next_offset,
            last_dropped_offset: t.dropped_last_offset,
            segments_deleted: later_segments,
            reason: t.fault.reason.clone(),
        }
    }

    /// Tails that recovery cut off when this log was opened (empty after a clean shutdown).
    pub fn recovered_tails(&self) -> &[RecoveredTail] {
        &self.recovered
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// First offset still stored (records below it are deleted or hidden).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Current configuration.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration (applies to the next append, roll and retention pass).
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    fn poisoned(&self, reason: String) -> StorageError {
        StorageError::Poisoned {
            topic: self.topic.clone(),
            partition: self.partition,
            reason,
        }
    }

    fn active(&self) -> Arc<Segment> {
        self.segments
            .read()
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    /// Appends `records` (one or more v2 batches back to back, as a Produce request carries
    /// them): validates them all first (nothing is stored if any is bad), assigns offsets,
    /// patches each batch's base offset and partition leader epoch, writes, and returns once
    /// the flush policy is met.
    pub fn append(&self, records: &[u8], leader_epoch: i32) -> Result<AppendInfo, StorageError> {
        let (info, ticket) = self.append_unsynced(records, leader_epoch)?;
        self.wait_durable(ticket)?;
        Ok(info)
    }

    /// Waits until the append behind `ticket` meets the flush policy.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] when an fsync failed.
    pub fn wait_durable(&self, ticket: DurabilityTicket) -> Result<(), StorageError> {
        self.durability
            .wait(ticket.0, self.config().flush)
            .map_err(|r| self.poisoned(r))
    }

    /// The first half of [`PartitionLog::append`]: validates, assigns offsets
    /// and writes, without waiting for the flush policy. Callers that must
    /// order appends under their own lock (idempotent-producer checks) hold
    /// it only for this half, then call [`PartitionLog::wait_durable`]
    /// outside it, so concurrent appends still share one fsync. The offsets
    /// must not be acknowledged before `wait_durable` returns.
    ///
    /// # Errors
    /// As [`PartitionLog::append`].
    pub fn append_unsynced(
        &self,
        records: &[u8],
        leader_epoch: i32,
    ) -> Result<(AppendInfo, DurabilityTicket), StorageError> {
        let config = self.config();
        let mut batches = Vec::new();
        let mut pos = 0usize;
        while pos < records.len() {
            let header =
                validate_batch(&records[pos..]).map_err(|fault| StorageError::InvalidBatch {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    batch_index: batches.len(),
                    position: pos,
                    fault,
                })?;
            let len = header.total_len();
            if len > config.max_batch_bytes as usize {
                return Err(StorageError::BatchTooLarge {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    size: len,
                    max: config.max_batch_bytes,
                });
            }
            batches.push(PendingBatch {
                base_offset: 0,
                last_offset: i64::from(header.last_offset_delta),
                max_timestamp: header.max_timestamp,
                position: pos,
                len,
            });
            pos += len;
        }
        if batches.is_empty() {
            return Err(StorageError::EmptyRecords {
                topic: self.topic.clone(),
                partition: self.partition,
            });
        }
        let total = records.len() as u64;
        let max_timestamp = batches
            .iter()
            .map(|b| b.max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);

        let in_progress = self.durability.begin_write();
        let mut writer = self.writer.lock();
        self.durability
            .check_poisoned()
            .map_err(|r| self.poisoned(r))?;
        let base_offset = self.log_end.load(Ordering::Acquire);
        let mut next = base_offset;
        for b in &mut batches {
            let delta = b.last_offset;
            b.base_offset = next;
            b.last_offset = next
                .checked_add(delta)
                .ok_or(StorageError::OffsetOverflow {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    offset: next,
                })?;
            next = b.last_offset + 1;
        }
        let last_offset = next - 1;

        let mut active = self.active();
        if self.should_roll(&active, &config, total, max_timestamp, last_offset) {
            active = self.roll(&active)?;
        }
        if last_offset - active.base_offset() > i64::from(u32::MAX)
            || active.len() + total > u64::from(u32::MAX)
        {
            return Err(StorageError::OffsetOverflow {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: last_offset,
            });
        }
        let scratch = &mut writer.scratch;
        scratch.clear();
        scratch.extend_from_slice(records);
        for (batch_index, b) in batches.iter().enumerate() {
            // Each batch was validated above, so it holds a whole header; a fault here would
            // still be reported, not a panic.
            let at = scratch.get_mut(b.position..).unwrap_or_default();
            patch_base_offset_and_epoch(at, b.base_offset, leader_epoch).map_err(|fault| {
                StorageError::InvalidBatch {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    batch_index,
                    position: b.position,
                    fault,
                }
            })?;
        }
        active.append(scratch, &batches, index_interval(&config))?;
        if scratch.capacity() > 2 * config.max_batch_bytes as usize {
            *scratch = Vec::new();
        }
        self.size.fetch_add(total, Ordering::AcqRel);
        self.log_end.store(next, Ordering::Release);
        let ticket = self.durability.record_write(total);
        drop(writer);
        drop(in_progress);

        let record_count: i64 = next - base_offset;
        Ok((
            AppendInfo {
                base_offset,
                last_offset,
                max_timestamp,
                record_count: u32::try_from(record_count).unwrap_or(u32::MAX),
                batches: u32::try_from(batches.len()).unwrap_or(u32::MAX),
            },
            DurabilityTicket(ticket),
        ))
    }

    fn should_roll(
        &self,
        active: &Segment,
        config: &LogConfig,
        incoming_bytes: u64,
        incoming_max_timestamp: i64,
        incoming_last_offset: i64,
    ) -> bool {
        if active.len() == 0 {
            return false;
        }
        let too_big = active.len() + incoming_bytes > config.effective_segment_bytes();
        let first = active.first_timestamp();
        let segment_ms = i64::try_from(config.segment_ms).unwrap_or(i64::MAX);
        let too_old =
            first != NO_TIMESTAMP && incoming_max_timestamp.saturating_sub(first) > segment_ms;
        let offsets_full = incoming_last_offset - active.base_offset() > i64::from(u32::MAX);
        too_big || too_old || offsets_full
    }

    /// Seals `active` and starts a new segment at the log end. Writer only.
    fn roll(&self, active: &Arc<Segment>) -> Result<Arc<Segment>, StorageError> {
        active.seal()?;
        let new = Arc::new(Segment::create(&self.dir, active.next_offset())?);
        self.durability
            .set_active(new.file(), new.log_path().to_owned());
        self.segments.write().push(Arc::clone(&new));
        tracing::debug!(topic = %self.topic, partition = self.partition, base_offset = new.base_offset(), "rolled segment");
        Ok(new)
    }

    fn out_of_range(&self, offset: i64, start: i64, end: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.partition,
            offset,
            log_start_offset: start,
            log_end_offset: end,
        }
    }

    /// Whole batches starting with the one containing `offset`, up to `max_bytes` (at least one
    /// whole batch if any exists), excluding batches whose base offset is `>= max_offset`.
    /// `offset == log_end_offset` gives an empty result; outside `[start, end]` is
    /// [`StorageError::OffsetOutOfRange`]. The first batch may start before `offset` (and
    /// before the log start after `advance_start`), as in Kafka; clients skip those records.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, StorageError> {
        let end = self.log_end_offset();
        let start = self.log_start_offset();
        if offset < start || offset > end {
            return Err(self.out_of_range(offset, start, end));
        }
        let mut result = ReadResult {
            chunks: Vec::new(),
            log_start_offset: start,
            log_end_offset: end,
            next_offset: offset,
        };
        let limit = max_offset.min(end);
        let segments = self.segments.read();
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let mut cursor = offset;
        let mut remaining = max_bytes;
        for seg in &segments[first..] {
            if cursor >= limit {
                break;
            }
            if seg.next_offset() <= cursor {
                continue;
            }
            let Some(chunk) = seg.read(cursor, remaining, limit, result.chunks.is_empty())? else {
                break;
            };
            remaining = remaining.saturating_sub(chunk.bytes.len());
            cursor = chunk.next_offset;
            result.next_offset = cursor;
            result.chunks.push(chunk.bytes);
            // Continue into the next segment only if this one was exhausted.
            if cursor < seg.next_offset() || remaining == 0 {
                break;
            }
        }
        Ok(result)
    }

    /// The first batch whose max timestamp is `>= timestamp_ms`: `(offset, timestamp)` where
    /// offset is that batch's base offset (or the log start if the batch straddles it) and
    /// timestamp is the batch's max timestamp. Batch granularity: records are not decoded, so
    /// the offset may precede the first matching record within the batch. `None` if no batch
    /// qualifies (Kafka then answers with the log end offset).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let end = self.log_end_offset();
        let start = self.log_start_offset();
        let segments = self.segments.read();
        for seg in segments.iter() {
            if seg.next_offset() <= start {
                continue;
            }
            if let Some(found) = seg.find_timestamp(timestamp_ms, start, end)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Removes every batch containing an offset `>= offset` (Raft log conflict). The new log
    /// end is the base offset of the first removed batch (`offset` itself when it is a batch
    /// boundary). Sealed segments are cut by write-new + rename, the active one in place, each
    /// followed by fsync, so a crash leaves either the old or the new log.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let config = self.config();
        let interval = index_interval(&config);
        let _writer = self.writer.lock();
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let mut segments = self.segments.write();
        let old_active = segments.last().map(|s| s.file());
        let new_start = self.log_start_offset().min(offset.max(0));
        if new_start < self.log_start_offset() {
            checkpoint::write(&self.dir, new_start)?;
        }
        while segments.len() > 1 && segments.last().is_some_and(|s| s.base_offset() >= offset) {
            if let Some(s) = segments.pop() {
                s.delete_files()?;
            }
        }
        let last = segments
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("segments is non-empty"));
        if last.base_offset() >= offset {
            last.delete_files()?;
            segments.clear();
            segments.push(Arc::new(Segment::create(&self.dir, offset.max(0))?));
        } else if let Some((position, _)) = last.cut_position(offset)? {
            if last.is_sealed() {
                let replacement = Arc::new(last.rewrite_prefix(position, interval)?);
                segments.pop();
                segments.push(replacement);
            } else {
                last.truncate_active(position, interval)?;
            }
        } else if last.is_sealed() {
            segments.push(Arc::new(Segment::create(&self.dir, last.next_offset())?));
        }
        sync_dir(&self.dir)?;
        let active = segments
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("segments is non-empty"));
        if old_active.is_none_or(|f| !Arc::ptr_eq(&f, &active.file())) {
            self.durability
                .set_active(active.file(), active.log_path().to_owned());
        }
        let new_end = active.next_offset();
        // A mid-batch offset below the start can leave the end below `new_start`.
        let final_start = new_start.min(new_end);
        if final_start < new_start {
            checkpoint::write(&self.dir, final_start)?;
        }
        self.log_end.store(new_end, Ordering::Release);
        self.log_start.store(final_start, Ordering::Release);
        self.size
            .store(segments.iter().map(|s| s.len()).sum(), Ordering::Release);
        Ok(())
    }

    /// Empties the log and restarts it at `offset`, at or beyond its end: every segment is
    /// deleted and an empty active segment begins there (log start = log end = `offset`).
    /// Replication installs a Raft snapshot with it: a follower too far behind the leader's
    /// retention point continues from the leader's first offset. The new start is persisted
    /// first, so an interrupted reset reopens with the start clamped to what is left, and the
    /// caller (whose own state names the new start) resets again.
    pub fn reset_to(&self, offset: i64) -> Result<(), StorageError> {
        let _writer = self.writer.lock();
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset < end {
            return Err(self.out_of_range(offset, start, end));
        }
        let mut segments = self.segments.write();
        checkpoint::write(&self.dir, offset)?;
        for s in segments.drain(..) {
            s.delete_files()?;
        }
        let fresh = Arc::new(Segment::create(&self.dir, offset)?);
        segments.push(Arc::clone(&fresh));
        sync_dir(&self.dir)?;
        self.durability
            .set_active(fresh.file(), fresh.log_path().to_owned());
        self.log_end.store(offset, Ordering::Release);
        self.log_start.store(offset, Ordering::Release);
        self.size.store(0, Ordering::Release);
        tracing::info!(topic = %self.topic, partition = self.partition, offset, previous_end = end, "log reset to a new start");
        Ok(())
    }

    /// Moves the log start to `offset` (DeleteRecords): records below it become unreadable and
    /// whole segments below it are deleted. The new start is persisted before any file is
    /// deleted. `offset` above the log end is [`StorageError::OffsetOutOfRange`]; at or below
    /// the current start it is a no-op.
    pub fn advance_start(&self, offset: i64) -> Result<(), StorageError> {
        let _writer = self.writer.lock();
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        if offset > end {
            return Err(self.out_of_range(offset, start, end));
        }
        if offset <= start {
            return Ok(());
        }
        checkpoint::write(&self.dir, offset)?;
        self.log_start.store(offset, Ordering::Release);
        let active = self.active();
        if active.len() > 0 && active.next_offset() <= offset {
            self.roll(&active)?;
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let n = segments
                .iter()
                .take(segments.len() - 1)
                .take_while(|s| s.next_offset() <= offset)
                .count();
            segments.drain(..n).collect()
        };
        self.delete_removed(&removed)
    }

    fn delete_removed(&self, removed: &[Arc<Segment>]) -> Result<(), StorageError> {
        for s in removed {
            self.size.fetch_sub(s.len(), Ordering::AcqRel);
            s.delete_files()?;
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes whole sealed segments (oldest first, never the active one) whose newest
    /// timestamp is older than `now_ms - retention_ms`, or while the log without them would
    /// still be at least `retention_bytes`. Advances the log start offset. `now_ms` is
    /// injected so callers (and tests) own the clock.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let _writer = self.writer.lock();
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let n = self.expired_segments(&segments, now_ms);
            if n > 0 {
                let new_start = segments[n].base_offset().max(self.log_start_offset());
                self.log_start.store(new_start, Ordering::Release);
            }
            segments.drain(..n).collect()
        };
        self.delete_removed(&removed)?;
        let outcome = RetentionOutcome {
            segments_deleted: removed.len(),
            bytes_deleted: removed.iter().map(|s| s.len()).sum(),
            new_log_start_offset: self.log_start_offset(),
        };
        if outcome.segments_deleted > 0 {
            tracing::info!(topic = %self.topic, partition = self.partition, segments = outcome.segments_deleted, bytes = outcome.bytes_deleted, log_start_offset = outcome.new_log_start_offset, "retention deleted segments");
        }
        Ok(outcome)
    }

    /// How many leading segments retention would delete at `now_ms` (never the active one).
    fn expired_segments(&self, segments: &[Arc<Segment>], now_ms: i64) -> usize {
        let config = self.config();
        let total = self.size_bytes();
        let cutoff = config
            .retention_ms
            .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
        let mut bytes = 0u64;
        let mut n = 0usize;
        while n + 1 < segments.len() {
            let s = &segments[n];
            let by_time = cutoff.is_some_and(|c| s.max_timestamp() < c);
            let by_size = config.retention_bytes.is_some_and(|limit| {
                total
                    .checked_sub(bytes + s.len())
                    .is_some_and(|rest| rest >= limit)
            });
            if !(by_time || by_size) {
                break;
            }
            bytes += s.len();
            n += 1;
        }
        n
    }

    /// The log start offset [`PartitionLog::apply_retention`] would leave at `now_ms`, without
    /// deleting anything (`None` when nothing has expired). A replicated partition hands it to
    /// its Raft group, which trims the log and its index translation together.
    pub fn retention_point(&self, now_ms: i64) -> Option<i64> {
        let segments = self.segments.read();
        let n = self.expired_segments(&segments, now_ms);
        (n > 0).then(|| segments[n].base_offset().max(self.log_start_offset()))
    }

    /// Makes everything appended so far durable (one fdatasync shared with concurrent callers).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.durability.sync_all().map_err(|r| self.poisoned(r))
    }

    /// Number of group-commit sync rounds since open: with many concurrent appenders it stays
    /// well below the number of appends (exposed for metrics and tests).
    pub fn sync_count(&self) -> u64 {
        self.durability.sync_count()
    }

    /// Deletes the partition directory and everything in it (DeleteTopics).
    pub fn delete(mut self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        self.skip_clean_close = true;
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(|e| StorageError::io("remove dir", &dir, e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl PartitionLog {
    /// Clean close: everything synced, the active segment's indexes written, then the marker
    /// that lets the next open skip the full scan of the active segment.
    fn close_cleanly(&self) -> Result<(), StorageError> {
        self.durability.sync_all().map_err(|r| self.poisoned(r))?;
        let active = self.active();
        active.write_index_files()?;
        clean_shutdown::write(&self.dir, active.base_offset(), active.len())
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        if self.skip_clean_close {
            return;
        }
        if let Err(e) = self.close_cleanly() {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "clean close failed; the next open will scan the active segment");
        }
    }
}
