//! [`PartitionStore`]: `raft::Storage` for one partition whose Raft log is its partition log.
//!
//! Data entries are appended to the [`PartitionLog`] as the record batches they carry, with the
//! Raft term as the batch's partition leader epoch; control entries and the rest of Raft's state
//! go to the Raft state file (`state_file`); the [`OffsetTranslator`] maps between the two.
//!
//! Durability rules (what makes a crash at any point recoverable):
//! * The log is opened with `FlushPolicy::Never`: appends only write, and the driver calls
//!   [`PartitionStore::flush`] once per loop turn for every partition that changed (group
//!   commit). Raft is told entries are persisted only after that flush.
//! * Within one batch of new entries, in this order: a conflicting suffix is truncated
//!   (`PartitionLog::truncate_to` syncs by itself); then, if the entries contain a control entry,
//!   the truncation removed one, or the term or vote changed, the state file is rewritten
//!   (durably) with the control entries it will hold; only then are data batches appended. So a
//!   data batch can never be durable while a control entry before it is not, which is what lets
//!   [`OffsetTranslator::rebuild`] interleave them correctly after a crash.
//! * The commit and applied indexes are written lazily (with the next state file write, at the
//!   latest on [`PartitionStore::close`]): Raft does not need them durable, and on restart the
//!   commit index is clamped to the last entry that survived.
//!
//! The window only moves up through [`PartitionStore::compact_to_offset`] (retention driven by
//! the replication layer, never by storage's own retention worker, which would delete batches
//! without telling the translator). A follower behind the leader's window start (a new replica,
//! or one that was down for longer than the retention) gets a snapshot: it carries no state, only
//! the window start (index, term, configuration, Kafka offset), and installing it empties the
//! follower's log and restarts it at that offset ([`PartitionStore::apply_snapshot`]); the
//! entries after it replicate as usual. Offsets below the new start were deleted by retention on
//! the leader anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};
use starlog_storage::{parse_batch_header, FlushPolicy, LogConfig, PartitionLog, StorageError};

use crate::error::ReplicationError;
use crate::ids::{GroupId, NodeId};
use crate::state_file::{self, PersistedState};
use crate::translator::{BatchSpan, ControlEntry, EntryLocation, OffsetTranslator};

/// How much of the log [`PartitionStore::open`] reads at a time while rebuilding the translator.
const REBUILD_READ_BYTES: usize = 1 << 20;

/// True for entries that carry no Kafka records.
pub fn is_control(entry: &Entry) -> bool {
    entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty()
}

/// Options of [`PartitionStore::open`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Configuration of a replica created here for the first time (see
    /// `GroupSpec::bootstrap_voters`); must not be empty. Ignored when a state file exists.
    pub bootstrap_voters: Vec<NodeId>,
    /// Record the length of every segment file after each sync, so a crash simulation can cut
    /// exactly the bytes that were never synced ([`PartitionStore::synced_log_lengths`]).
    pub track_synced_lengths: bool,
    /// Do not fdatasync appended data: entries count as persisted once written to the OS
    /// ("rely on replication", as Kafka does by default). Safe against process crashes (the
    /// page cache survives them); a power loss of a majority at once can lose acknowledged
    /// records. The Raft state file is always written durably.
    pub skip_data_sync: bool,
}

/// A data sync to make (see [`PartitionStore::begin_sync`]).
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// The log to sync.
    pub log: Arc<PartitionLog>,
    /// The last Raft index stored when the job was made.
    pub last_index: u64,
}

/// The Raft storage of one partition (see the module docs).
#[derive(Debug)]
pub struct PartitionStore {
    group: GroupId,
    dir: PathBuf,
    log: Arc<PartitionLog>,
    hard_state: HardState,
    conf_state: ConfState,
    applied: u64,
    translator: OffsetTranslator,
    /// Last index known to be durable.
    persisted_last: u64,
    data_dirty: bool,
    state_stale: bool,
    synced_lengths: Option<BTreeMap<PathBuf, u64>>,
    skip_data_sync: bool,
}

impl PartitionStore {
    /// Opens the partition log in `dir` (creating it if needed) with `FlushPolicy::Never`, reads
    /// or creates the Raft state file and rebuilds the index ↔ offset translation from the log's
    /// batch headers. A log with data but no state file is refused (it was not written by Raft).
    pub fn open(
        group: GroupId,
        dir: &Path,
        topic: &str,
        partition: i32,
        mut config: LogConfig,
        options: &StoreOptions,
    ) -> Result<Self, ReplicationError> {
        config.flush = FlushPolicy::Never;
        let storage_err = |source| ReplicationError::Storage {
            group,
            topic: topic.to_owned(),
            partition,
            source,
        };
        let log = Arc::new(PartitionLog::open(dir, topic, partition, config).map_err(storage_err)?);
        let inconsistent = |reason: String| ReplicationError::Inconsistent {
            group,
            topic: topic.to_owned(),
            partition,
            reason,
        };
        let state = match state_file::read(dir)? {
            Some(s) => s,
            None => {
                if options.bootstrap_voters.is_empty() {
                    return Err(inconsistent(
                        "a new replica needs the group's current voters to start from (the initial configuration is not in the raft log)".to_owned(),
                    ));
                }
                if log.log_end_offset() > log.log_start_offset() {
                    return Err(inconsistent(format!(
                        "the partition log holds offsets [{}, {}) but there is no raft state file: it was not written through Raft",
                        log.log_start_offset(),
                        log.log_end_offset()
                    )));
                }
                let s = PersistedState {
                    conf_state: ConfState::from((options.bootstrap_voters.clone(), Vec::new())),
                    first_index: 1,
                    start_offset: log.log_end_offset(),
                    ..PersistedState::default()
                };
                state_file::write(dir, &s)?;
                s
            }
        };
        if state.start_offset > log.log_end_offset() {
            // A snapshot install wrote the state file and stopped before the log was reset.
            tracing::warn!(%group, topic, partition, start_offset = state.start_offset, log_end = log.log_end_offset(), "completing an interrupted snapshot install: restarting the log at the raft window start");
            log.reset_to(state.start_offset).map_err(storage_err)?;
        }
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        if state.start_offset < start || state.start_offset > end {
            return Err(inconsistent(format!(
                "raft window starts at offset {} but the log holds [{start}, {end}): batches were removed outside Raft (storage retention must not run on replicated partitions)",
                state.start_offset
            )));
        }
        let translation = |source| ReplicationError::Translation {
            group,
            topic: topic.to_owned(),
            partition,
            source,
        };
        let mut rebuild = OffsetTranslator::rebuild(
            state.first_index,
            state.prev_term,
            state.start_offset,
            state.controls.iter().cloned(),
        );
        let mut offset = state.start_offset;
        while offset < end {
            let read = log
                .read(offset, REBUILD_READ_BYTES, i64::MAX)
                .map_err(storage_err)?;
            if read.is_empty() {
                break;
            }
            for chunk in &read.chunks {
                let mut pos = 0;
                while pos < chunk.len() {
                    let h = parse_batch_header(&chunk[pos..]).map_err(|e| {
                        inconsistent(format!("batch header near offset {offset}: {e}"))
                    })?;
                    if h.base_offset != offset {
                        return Err(inconsistent(format!(
                            "expected a batch starting at offset {offset}, found one at {}",
                            h.base_offset
                        )));
                    }
                    let term = u64::try_from(h.partition_leader_epoch).map_err(|_| {
                        inconsistent(format!(
                            "batch at offset {offset} has leader epoch {} (not a Raft term)",
                            h.partition_leader_epoch
                        ))
                    })?;
                    let next = offset + i64::from(h.last_offset_delta) + 1;
                    rebuild
                        .push_batch(BatchSpan {
                            base_offset: offset,
                            next_offset: next,
                            term,
                        })
                        .map_err(translation)?;
                    offset = next;
                    pos += h.total_len();
                }
            }
        }
        let (translator, stale) = rebuild.finish().map_err(translation)?;
        let last = translator.last_index();
        // raft-rs requires `first_index - 1 <= applied <= commit <= last_index` at start; the
        // commit index is persisted lazily and may be ahead of entries lost in a torn tail.
        let floor = translator.first_index() - 1;
        let mut hard_state = state.hard_state.clone();
        hard_state.commit = hard_state.commit.min(last).max(floor);
        let applied = state.applied.clamp(floor, hard_state.commit);
        let mut store = Self {
            group,
            dir: dir.to_owned(),
            log,
            hard_state,
            conf_state: state.conf_state.clone(),
            applied,
            translator,
            persisted_last: last,
            data_dirty: false,
            state_stale: false,
            synced_lengths: options.track_synced_lengths.then(BTreeMap::new),
            skip_data_sync: options.skip_data_sync,
        };
        if !stale.is_empty() {
            tracing::warn!(
                %group,
                topic,
                partition,
                stale = stale.len(),
                first_stale_index = stale.first().map(|c| c.index),
                last_index = last,
                "dropped raft control entries that followed lost data; rewriting the raft state file"
            );
            store.write_state()?;
        }
        store.record_synced_lengths()?;
        tracing::debug!(%group, topic, partition, first_index = store.translator.first_index(), last_index = last, start_offset = store.translator.start_offset(), end_offset = store.translator.end_offset(), "opened raft partition store");
        Ok(store)
    }

    /// The partition log (for consumers: read up to [`Self::high_watermark`]).
    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The translation between Raft indexes and Kafka offsets.
    pub fn translator(&self) -> &OffsetTranslator {
        &self.translator
    }

    /// The group this store belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Last Raft index known to be durable.
    pub fn persisted_last_index(&self) -> u64 {
        self.persisted_last
    }

    /// Current configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Index up to which entries were applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Kafka high watermark for commit index `commit`: the offset after every data entry that is
    /// both committed and durable here.
    pub fn high_watermark(&self, commit: u64) -> i64 {
        self.translator
            .offset_after(commit.min(self.persisted_last))
    }

    /// Segment file lengths as of the last sync (only with `track_synced_lengths`).
    pub fn synced_log_lengths(&self) -> Option<&BTreeMap<PathBuf, u64>> {
        self.synced_lengths.as_ref()
    }

    pub(crate) fn storage_err(&self, source: StorageError) -> ReplicationError {
        ReplicationError::Storage {
            group: self.group,
            topic: self.log.topic().to_owned(),
            partition: self.log.partition(),
            source,
        }
    }

    fn translation_err(&self, source: crate::translator::TranslatorError) -> ReplicationError {
        ReplicationError::Translation {
            group: self.group,
            topic: self.log.topic().to_owned(),
            partition: self.log.partition(),
            source,
        }
    }

    fn inconsistent(&self, reason: String) -> ReplicationError {
        ReplicationError::Inconsistent {
            group: self.group,
            topic: self.log.topic().to_owned(),
            partition: self.log.partition(),
            reason,
        }
    }

    fn persisted_state(&self, extra_controls: &[ControlEntry]) -> PersistedState {
        let mut controls: Vec<ControlEntry> = self.translator.controls().cloned().collect();
        controls.extend_from_slice(extra_controls);
        PersistedState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
            applied: self.applied,
            first_index: self.translator.first_index(),
            prev_term: self.translator.prev_term(),
            start_offset: self.translator.start_offset(),
            controls,
        }
    }

    fn write_state(&mut self) -> Result<(), ReplicationError> {
        state_file::write(&self.dir, &self.persisted_state(&[]))?;
        self.state_stale = false;
        Ok(())
    }

    fn record_synced_lengths(&mut self) -> Result<(), ReplicationError> {
        let Some(map) = self.synced_lengths.as_mut() else {
            return Ok(());
        };
        map.clear();
        let io = |source| ReplicationError::Io {
            op: "list partition dir",
            path: self.dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let len = entry.metadata().map_err(io)?.len();
                map.insert(path, len);
            }
        }
        Ok(())
    }

    /// Stores new entries from a Raft `Ready` (and its hard state), in the order the module docs
    /// give: truncate a conflicting suffix, write the state file if needed, append data. Data is
    /// not synced: call [`Self::flush`] before telling Raft it is persisted.
    pub fn append_entries(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), ReplicationError> {
        let mut write_state = false;
        // Raft may commit the new entries in the same Ready, so conflicts are checked against
        // the commit index from before it.
        let old_commit = self.hard_state.commit;
        if let Some(hs) = hard_state {
            if hs.term != self.hard_state.term || hs.vote != self.hard_state.vote {
                write_state = true;
            }
            if hs.commit != self.hard_state.commit {
                self.state_stale = true;
            }
            self.hard_state = hs.clone();
        }
        let mut new_controls = Vec::new();
        if let Some(first) = entries.first() {
            let from = first.index;
            if from <= self.translator.last_index() {
                if from <= old_commit {
                    return Err(self.inconsistent(format!(
                        "raft asked to replace entries from index {from}, at or below the commit index {old_commit}"
                    )));
                }
                let removes_control = self.translator.controls().any(|c| c.index >= from);
                let offset = self
                    .translator
                    .offset_at(from)
                    .map_err(|e| self.translation_err(e))?;
                self.log
                    .truncate_to(offset)
                    .map_err(|e| self.storage_err(e))?;
                self.translator
                    .truncate_from(from)
                    .map_err(|e| self.translation_err(e))?;
                self.persisted_last = self.persisted_last.min(from - 1);
                self.record_synced_lengths()?;
                tracing::info!(group = %self.group, topic = self.log.topic(), partition = self.log.partition(), from_index = from, offset, "truncated conflicting raft suffix");
                write_state |= removes_control;
            }
            for e in entries.iter().filter(|e| is_control(e)) {
                new_controls.push(ControlEntry {
                    index: e.index,
                    term: e.term,
                    entry_type: e.get_entry_type(),
                    data: e.data.clone(),
                    context: e.context.clone(),
                });
            }
        }
        if write_state || !new_controls.is_empty() {
            state_file::write(&self.dir, &self.persisted_state(&new_controls))?;
            self.state_stale = false;
        }
        let mut controls = new_controls.into_iter();
        for e in entries {
            if is_control(e) {
                let Some(c) = controls.next() else {
                    unreachable!("one control entry was collected per control entry")
                };
                self.translator
                    .push_control(c)
                    .map_err(|err| self.translation_err(err))?;
                continue;
            }
            self.append_data(e)?;
        }
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            tracing::trace!(group = %self.group, first = first.index, last = last.index, last_index = self.translator.last_index(), end_offset = self.translator.end_offset(), "stored raft entries");
        }
        Ok(())
    }

    fn append_data(&mut self, e: &Entry) -> Result<(), ReplicationError> {
        let header = parse_batch_header(&e.data).map_err(|fault| {
            self.inconsistent(format!(
                "raft entry {} is not a record batch: {fault}",
                e.index
            ))
        })?;
        if header.total_len() != e.data.len() {
            return Err(self.inconsistent(format!(
                "raft entry {} holds {} bytes but its batch is {} bytes (one entry must be one batch)",
                e.index,
                e.data.len(),
                header.total_len()
            )));
        }
        let epoch = i32::try_from(e.term).map_err(|_| {
            self.inconsistent(format!(
                "term {} of entry {} does not fit a leader epoch",
                e.term, e.index
            ))
        })?;
        let expected = self.translator.end_offset();
        let info = self
            .log
            .append(&e.data, epoch)
            .map_err(|err| self.storage_err(err))?;
        if info.base_offset != expected {
            return Err(self.inconsistent(format!(
                "entry {} was stored at offset {} but the raft log ends at {expected} (something else appended to the log)",
                e.index, info.base_offset
            )));
        }
        self.translator
            .push_data(
                e.index,
                BatchSpan {
                    base_offset: info.base_offset,
                    next_offset: info.last_offset + 1,
                    term: e.term,
                },
            )
            .map_err(|err| self.translation_err(err))?;
        self.data_dirty = true;
        Ok(())
    }

    /// Makes everything appended durable (one fdatasync if data was appended since the last
    /// flush) and marks it persisted.
    pub fn flush(&mut self) -> Result<bool, ReplicationError> {
        let synced = self.data_dirty && !self.skip_data_sync;
        if synced {
            self.log.flush().map_err(|e| self.storage_err(e))?;
            self.record_synced_lengths()?;
        }
        self.data_dirty = false;
        self.persisted_last = self.translator.last_index();
        Ok(synced)
    }

    /// True if data was appended since the last flush.
    pub fn needs_flush(&self) -> bool {
        self.data_dirty
    }

    /// The asynchronous form of [`Self::flush`], first half: when data was appended since the
    /// last flush, returns the log to sync and forgets that the data is dirty; the caller syncs
    /// it (on any thread, concurrently with further appends), calls [`Self::finish_sync`], and
    /// reports what Raft then counts as persisted with [`Self::mark_persisted`]. Returns `None`
    /// when nothing needs a sync (nothing appended, or data syncs are skipped).
    pub fn begin_sync(&mut self) -> Option<SyncJob> {
        if !self.data_dirty {
            return None;
        }
        self.data_dirty = false;
        if self.skip_data_sync {
            return None;
        }
        Some(SyncJob {
            log: Arc::clone(&self.log),
            last_index: self.translator.last_index(),
        })
    }

    /// The second half of [`Self::begin_sync`], once the job's log was synced (records the
    /// synced lengths for the crash simulation).
    pub fn finish_sync(&mut self, _job: &SyncJob) -> Result<(), ReplicationError> {
        self.record_synced_lengths()
    }

    /// Records the last index Raft counts as persisted (after its `on_persist_ready`); the high
    /// watermark never exposes entries beyond it.
    pub fn mark_persisted(&mut self, index: u64) {
        self.persisted_last = index.min(self.translator.last_index());
    }

    /// Records the commit index (persisted lazily).
    pub fn set_commit(&mut self, commit: u64) {
        if commit > self.hard_state.commit {
            self.hard_state.commit = commit;
            self.state_stale = true;
        }
    }

    /// Records that entries up to `applied` were applied (persisted lazily).
    pub fn set_applied(&mut self, applied: u64) {
        if applied > self.applied {
            self.applied = applied;
            self.state_stale = true;
        }
    }

    /// Applies a new configuration at `index` and persists it at once (with the applied index),
    /// so a restart neither loses it nor applies it twice.
    pub fn apply_conf_state(&mut self, cs: ConfState, index: u64) -> Result<(), ReplicationError> {
        self.conf_state = cs;
        self.applied = self.applied.max(index);
        self.write_state()
    }

    /// Writes the state file if the commit or applied index moved since the last write; true
    /// if it wrote.
    pub fn persist_lazy_state(&mut self) -> Result<bool, ReplicationError> {
        if self.state_stale {
            self.write_state()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Raft log compaction for retention: forgets every entry before the batch holding
    /// `offset`, but never an entry that is not applied yet. The new window start is persisted
    /// before the log's start moves, so a crash in between only leaves extra batches below the
    /// window. Returns the new start offset of the log.
    pub fn compact_to_offset(&mut self, offset: i64) -> Result<i64, ReplicationError> {
        let t = &self.translator;
        let wanted = if offset >= t.end_offset() {
            t.last_index() + 1
        } else {
            t.index_of_offset(offset).unwrap_or(t.first_index())
        };
        let index = wanted.min(self.applied + 1).max(t.first_index());
        if index == t.first_index() {
            return Ok(self.log.log_start_offset());
        }
        let mut next = self.translator.clone();
        next.compact_to(index)
            .map_err(|e| self.translation_err(e))?;
        let new_start = next.start_offset();
        let previous = std::mem::replace(&mut self.translator, next);
        if let Err(e) = self.write_state() {
            self.translator = previous;
            return Err(e);
        }
        self.log
            .advance_start(new_start)
            .map_err(|e| self.storage_err(e))?;
        tracing::info!(group = %self.group, topic = self.log.topic(), partition = self.log.partition(), first_index = index, start_offset = new_start, "compacted raft log (retention)");
        Ok(new_start)
    }

    /// Installs a snapshot from the leader (see [`raft::Storage::snapshot`] above): the Raft
    /// state file names the new window first (durably), then the log restarts empty at the
    /// snapshot's offset. A crash in between reopens into the same reset (see `open`).
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), ReplicationError> {
        let meta = snap.get_metadata();
        let offset_bytes: [u8; 8] = snap.data.as_ref().try_into().map_err(|_| {
            self.inconsistent(format!(
                "snapshot at index {} carries {} bytes, not a start offset",
                meta.index,
                snap.data.len()
            ))
        })?;
        let start_offset = i64::from_be_bytes(offset_bytes);
        if start_offset < self.translator.end_offset() && meta.index <= self.translator.last_index()
        {
            return Err(self.inconsistent(format!(
                "snapshot at index {} (offset {start_offset}) is not ahead of the log (last index {}, end offset {})",
                meta.index,
                self.translator.last_index(),
                self.translator.end_offset()
            )));
        }
        self.translator = OffsetTranslator::new(meta.index + 1, meta.term, start_offset);
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.applied = meta.index;
        self.write_state()?;
        self.log
            .reset_to(start_offset.max(self.log.log_end_offset()))
            .map_err(|e| self.storage_err(e))?;
        if self.log.log_end_offset() != start_offset {
            return Err(self.inconsistent(format!(
                "log reset for the snapshot ends at {} instead of {start_offset}",
                self.log.log_end_offset()
            )));
        }
        self.persisted_last = meta.index;
        self.data_dirty = false;
        self.record_synced_lengths()?;
        tracing::info!(group = %self.group, topic = self.log.topic(), partition = self.log.partition(), index = meta.index, term = meta.term, start_offset, "installed raft snapshot (log restarted at the leader's window start)");
        Ok(())
    }

    /// Clean shutdown: syncs data and writes the latest commit and applied indexes.
    pub fn close(&mut self) -> Result<(), ReplicationError> {
        self.flush()?;
        self.write_state()
    }

    fn read_entry(&self, index: u64) -> Result<Entry, ReplicationError> {
        let mut e = Entry {
            index,
            ..Entry::default()
        };
        match self.translator.locate(index) {
            Some(EntryLocation::Control(c)) => {
                e.term = c.term;
                e.set_entry_type(c.entry_type);
                e.data = c.data.clone();
                e.context = c.context.clone();
            }
            Some(EntryLocation::Data(span)) => {
                e.term = span.term;
                e.set_entry_type(EntryType::EntryNormal);
                let read = self
                    .log
                    .read(span.base_offset, 1, span.next_offset)
                    .map_err(|err| self.storage_err(err))?;
                e.data = match read.chunks.len() {
                    1 => read.chunks.into_iter().next().unwrap_or_default(),
                    _ => Bytes::from(read.chunks.concat()),
                };
                let header = parse_batch_header(&e.data).map_err(|fault| {
                    self.inconsistent(format!(
                        "batch of entry {index} at offset {}: {fault}",
                        span.base_offset
                    ))
                })?;
                if header.base_offset != span.base_offset || header.total_len() != e.data.len() {
                    return Err(self.inconsistent(format!(
                        "entry {index} should be the batch at offset {} but the log returned {} bytes starting at {}",
                        span.base_offset,
                        e.data.len(),
                        header.base_offset
                    )));
                }
            }
            None => {
                return Err(self.inconsistent(format!(
                    "entry {index} is outside the raft window [{}, {}]",
                    self.translator.first_index(),
                    self.translator.last_index()
                )))
            }
        }
        Ok(e)
    }
}

fn other(e: ReplicationError) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(e)))
}

impl raft::Storage for PartitionStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        if low < self.translator.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.translator.last_index() + 1 {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity(usize::try_from(high - low).unwrap_or(0).min(1024));
        let mut size = 0u64;
        for index in low..high {
            let e = self.read_entry(index).map_err(other)?;
            size += (e.data.len() + e.context.len() + 24) as u64;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx + 1 < self.translator.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        self.translator
            .term(idx)
            .ok_or(raft::Error::Store(raft::StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.translator.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.translator.last_index())
    }

    /// The snapshot of a partition is its window start: entries before `first_index` are gone
    /// (retention), and the follower restarts its log at the Kafka offset where the window
    /// begins; everything after comes as ordinary entries. There is no state machine to ship.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let t = &self.translator;
        let mut snap = Snapshot {
            data: Bytes::copy_from_slice(&t.start_offset().to_be_bytes()),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = t.first_index() - 1;
        meta.term = t.prev_term();
        // The latest applied configuration: changes between the snapshot index and the applied
        // index are also in the entries that follow, and re-applying them is harmless (adding a
        // voter twice or removing a removed one changes nothing).
        meta.set_conf_state(self.conf_state.clone());
        Ok(snap)
    }
}
