//! One segment of a partition log: the `.log` file of whole batches plus its sparse indexes.
//!
//! A segment is *active* (the last one, appended to, read with `pread` so that a truncation can
//! never fault a reader) or *sealed* (immutable, read through a shared memory map handed out as
//! zero-copy [`Bytes`]). Only the partition's single writer mutates a segment; readers see a
//! consistent prefix because the writer publishes the new length (Release) after the bytes and
//! index entries are in place.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::Mmap;
use parking_lot::RwLock;

use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, replace_file, sync_dir, tmp_path};
use crate::index::{IndexData, SegmentIndex};
use crate::mmap::map_readonly;
use crate::recovery::{scan, ScanState, TailFault, NO_TIMESTAMP};
use starlog_wire::{parse_batch_header, validate_batch, BatchHeader, BATCH_HEADER_LEN};

/// `<base_offset:020>.<ext>`.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Where one batch to append sits in the bytes given to [`Segment::append`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub position: usize,
    pub len: usize,
}

/// What recovery cut off the end of a segment.
#[derive(Debug, Clone)]
pub(crate) struct Truncation {
    pub fault: TailFault,
    pub bytes_dropped: u64,
    /// Offset the log continues at after the cut.
    pub next_offset: i64,
    /// Offsets lost with the bytes, when their headers were readable (best effort).
    pub dropped_last_offset: Option<i64>,
}

/// A chunk of whole batches read from one segment.
#[derive(Debug)]
pub(crate) struct SegmentRead {
    pub bytes: Bytes,
    pub next_offset: i64,
}

/// Keeps a segment's memory map alive for as long as any [`Bytes`] handed out from it.
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    dir: PathBuf,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    file: Arc<File>,
    len: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    first_timestamp: AtomicI64,
    bytes_since_entry: AtomicU64,
    sealed: AtomicBool,
    map: OnceLock<Arc<Mmap>>,
    index: RwLock<SegmentIndex>,
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_owned(),
        position,
        reason: reason.into(),
    }
}

fn to_usize(v: u64) -> usize {
    // Segment positions are below 4 GiB (checked on append and recovery) and this crate
    // targets 64-bit platforms, so the conversion cannot saturate in practice.
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base_offset, "log")),
            dir.join(file_name(base_offset, "index")),
            dir.join(file_name(base_offset, "timeindex")),
        )
    }

    fn from_state(
        dir: &Path,
        base_offset: i64,
        file: File,
        state: &ScanState,
        index: SegmentIndex,
        sealed: bool,
    ) -> Self {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        Self {
            base_offset,
            dir: dir.to_owned(),
            log_path,
            index_path,
            time_index_path,
            file: Arc::new(file),
            len: AtomicU64::new(state.valid_len),
            next_offset: AtomicI64::new(state.next_offset),
            max_timestamp: AtomicI64::new(state.max_timestamp),
            first_timestamp: AtomicI64::new(state.first_timestamp),
            bytes_since_entry: AtomicU64::new(state.bytes_since_entry),
            sealed: AtomicBool::new(sealed),
            map: OnceLock::new(),
            index: RwLock::new(index),
        }
    }

    fn empty_state(base_offset: i64) -> ScanState {
        ScanState {
            valid_len: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            first_timestamp: NO_TIMESTAMP,
            bytes_since_entry: 0,
            batches: 0,
        }
    }

    /// Creates a new, empty active segment (replacing any stale file of that name).
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Self, StorageError> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        remove_if_exists(&index_path)?;
        remove_if_exists(&time_index_path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("create", &log_path, e))?;
        sync_dir(dir)?;
        Ok(Self::from_state(
            dir,
            base_offset,
            file,
            &Self::empty_state(base_offset),
            SegmentIndex::empty(),
            false,
        ))
    }

    /// Opens an existing segment. A sealed segment, or the active one after a clean shutdown
    /// (`trust_index`), is trusted if its index files are consistent: only the batches after the
    /// last index entry are scanned. Otherwise (and always for the active segment after a
    /// crash) the whole segment is scanned, CRC included, and its index rebuilt. An invalid tail
    /// is truncated on disk and reported.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        active: bool,
        trust_index: bool,
        index_interval: u64,
    ) -> Result<(Self, Option<Truncation>), StorageError> {
        let (log_path, _, _) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io("open", &log_path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &log_path, e))?
            .len();
        let map = map_readonly(&file, &log_path)?;
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let mut state = Self::empty_state(base_offset);
        let mut index = SegmentIndex::empty();
        let mut rebuilt = true;
        let mut fault = None;
        if !active || trust_index {
            match Self::load_index(dir, base_offset, file_len, bytes) {
                Ok(Some(ix)) => {
                    if let Some((o, t)) = ix.last() {
                        state.valid_len = u64::from(o.position);
                        state.next_offset = base_offset + i64::from(o.relative_offset);
                        state.max_timestamp = t.max_timestamp;
                        state.first_timestamp = parse_batch_header(bytes)
                            .map(|h| h.max_timestamp)
                            .unwrap_or(NO_TIMESTAMP);
                    }
                    fault = scan(
                        bytes,
                        0,
                        base_offset,
                        &mut state,
                        None,
                        index_interval,
                        true,
                    );
                    index = ix;
                    rebuilt = false;
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(segment = %log_path.display(), %reason, "index inconsistent; rebuilding it from the log");
                }
            }
        }
        if rebuilt {
            fault = scan(
                bytes,
                0,
                base_offset,
                &mut state,
                Some(&mut index),
                index_interval,
                true,
            );
        }
        let truncation = fault.map(|fault| {
            let dropped_last_offset = last_offset_in(bytes, state.valid_len);
            Truncation {
                bytes_dropped: file_len - state.valid_len,
                next_offset: state.next_offset,
                dropped_last_offset,
                fault,
            }
        });
        let keep_map = !active && truncation.is_none();
        // Unmap before any truncation below (nothing reads the map after this point anyway).
        let map = if keep_map {
            map
        } else {
            drop(map);
            None
        };
        if truncation.is_some() {
            file.set_len(state.valid_len)
                .map_err(|e| StorageError::io("truncate", &log_path, e))?;
            file.sync_all()
                .map_err(|e| StorageError::io("fsync", &log_path, e))?;
            index.truncate_to_position(state.valid_len);
        }
        let sealed = !active && truncation.is_none();
        let seg = Self::from_state(dir, base_offset, file, &state, index, sealed);
        if let Some(m) = map {
            let _ = seg.map.set(Arc::new(m));
        }
        if sealed && rebuilt {
            seg.persist_and_map_index()?;
        }
        Ok((seg, truncation))
    }

    /// Loads and checks the index files of a sealed segment. `Ok(None)`: files missing;
    /// `Err(reason)`: present but inconsistent.
    fn load_index(
        dir: &Path,
        base_offset: i64,
        file_len: u64,
        bytes: &[u8],
    ) -> Result<Option<SegmentIndex>, String> {
        let (_, index_path, time_index_path) = Self::paths(dir, base_offset);
        let load = |p: &Path| -> Result<Option<IndexData>, String> {
            let f = match File::open(p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot open {}: {e}", p.display())),
            };
            match map_readonly(&f, p) {
                Ok(Some(m)) => Ok(Some(IndexData::Mapped(m))),
                Ok(None) => Ok(Some(IndexData::Mem(Vec::new()))),
                Err(e) => Err(e.to_string()),
            }
        };
        let (Some(o), Some(t)) = (load(&index_path)?, load(&time_index_path)?) else {
            return Ok(None);
        };
        let ix = SegmentIndex::from_data(o, t);
        ix.check(file_len)?;
        if file_len == 0 {
            return Ok(Some(ix));
        }
        let first = (ix.len() > 0).then(|| ix.offset_entry(0));
        if first.map(|e| (e.relative_offset, e.position)) != Some((0, 0)) {
            return Err("first entry does not point at the segment's first batch".to_owned());
        }
        let Some((last, _)) = ix.last() else {
            return Err("no entries".to_owned());
        };
        let at = to_usize(u64::from(last.position));
        let header = validate_batch(&bytes[at..]).map_err(|e| {
            format!(
                "last entry points at byte {} which is not a valid batch: {e}",
                last.position
            )
        })?;
        if header.base_offset != base_offset + i64::from(last.relative_offset) {
            return Err(format!(
                "last entry says offset {} but the batch there starts at {}",
                base_offset + i64::from(last.relative_offset),
                header.base_offset
            ));
        }
        Ok(Some(ix))
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn first_timestamp(&self) -> i64 {
        self.first_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Refuses an append that would not continue this segment, logging it at error level:
    /// nothing has been written when this fails.
    fn violated(&self, invariant: &'static str, offset: i64, detail: String) -> StorageError {
        tracing::error!(segment = %self.log_path.display(), offset, invariant, %detail, "storage invariant violated; append refused");
        StorageError::InvariantViolated {
            invariant,
            path: self.log_path.clone(),
            offset,
            detail,
        }
    }

    /// Invariant (offsets monotonic): an append starts exactly at the segment's end offset and
    /// byte length, its batches follow one another without gap or overlap, each holds at least
    /// one offset, and the index entries it adds follow the last one. Checked before anything
    /// is written, O(batches), no allocation unless it fails.
    fn check_append(
        &self,
        data: &[u8],
        batches: &[PendingBatch],
        pos0: u64,
    ) -> Result<(), StorageError> {
        const CONTINUES: &str = "an append continues the segment's offsets";
        let mut next = self.next_offset();
        let mut position = 0usize;
        for b in batches {
            if b.base_offset != next || b.last_offset < b.base_offset {
                return Err(self.violated(
                    CONTINUES,
                    b.base_offset,
                    format!(
                        "batch [{}, {}] but the segment ends at {next}",
                        b.base_offset, b.last_offset
                    ),
                ));
            }
            if b.position != position || b.len == 0 {
                return Err(self.violated(
                    "an append's batches are back to back",
                    b.base_offset,
                    format!(
                        "batch at byte {} of {} bytes, expected byte {position}",
                        b.position, b.len
                    ),
                ));
            }
            next = b.last_offset + 1;
            position += b.len;
        }
        if position != data.len() {
            return Err(self.violated(
                "an append's batches are back to back",
                next,
                format!("batches cover {position} of {} bytes", data.len()),
            ));
        }
        if let Some(first) = batches.first() {
            let rel = u32::try_from(first.base_offset - self.base_offset).unwrap_or(u32::MAX);
            let pos = u32::try_from(pos0).unwrap_or(u32::MAX);
            self.index.read().check_next(rel, pos).map_err(|e| {
                self.violated("index entries increase", first.base_offset, e.to_string())
            })?;
        }
        Ok(())
    }

    /// Appends already validated and patched batches. Writer only.
    pub(crate) fn append(
        &self,
        data: &[u8],
        batches: &[PendingBatch],
        index_interval: u64,
    ) -> Result<(), StorageError> {
        let pos0 = self.len.load(Ordering::Acquire);
        self.check_append(data, batches, pos0)?;
        if let Err(e) = self.file.write_all_at(data, pos0) {
            // Best effort: drop a partial write so the next append starts on a clean end.
            let _ = self.file.set_len(pos0);
            return Err(StorageError::io("write", &self.log_path, e));
        }
        let mut since = self.bytes_since_entry.load(Ordering::Relaxed);
        let mut max_ts = self.max_timestamp.load(Ordering::Relaxed);
        let mut last = self.next_offset.load(Ordering::Relaxed) - 1;
        {
            let mut ix = self.index.write();
            for b in batches {
                max_ts = max_ts.max(b.max_timestamp);
                if self.first_timestamp.load(Ordering::Relaxed) == NO_TIMESTAMP {
                    self.first_timestamp
                        .store(b.max_timestamp, Ordering::Release);
                }
                if ix.len() == 0 || since >= index_interval {
                    // The log rolls before relative offsets or positions could exceed u32.
                    let rel = u32::try_from(b.base_offset - self.base_offset).unwrap_or(u32::MAX);
                    let pos = u32::try_from(pos0 + b.position as u64).unwrap_or(u32::MAX);
                    // Follows the last entry: `check_append` checked the first one this
                    // append may add, and the rest increase with the batches. Should it
                    // still fail, the length and end below stay unpublished, so no reader
                    // sees these bytes.
                    ix.push(rel, pos, max_ts).map_err(|e| {
                        self.violated("index entries increase", b.base_offset, e.to_string())
                    })?;
                    since = 0;
                }
                since += b.len as u64;
                last = b.last_offset;
            }
        }
        self.bytes_since_entry.store(since, Ordering::Relaxed);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.len.store(pos0 + data.len() as u64, Ordering::Release);
        self.next_offset.store(last + 1, Ordering::Release);
        Ok(())
    }

    /// The shared map of a sealed segment (created on first use), `None` for the active one.
    fn view(&self) -> Result<Option<Arc<Mmap>>, StorageError> {
        if !self.is_sealed() {
            return Ok(None);
        }
        if let Some(m) = self.map.get() {
            return Ok(Some(Arc::clone(m)));
        }
        match map_readonly(&self.file, &self.log_path)? {
            None => Ok(None),
            Some(m) => {
                let _ = self.map.set(Arc::new(m));
                Ok(self.map.get().cloned())
            }
        }
    }

    fn header_at(
        &self,
        pos: u64,
        len: u64,
        view: Option<&Mmap>,
    ) -> Result<BatchHeader, StorageError> {
        if pos + BATCH_HEADER_LEN as u64 > len {
            return Err(corrupt(
                &self.log_path,
                pos,
                "batch header runs past the end of the segment",
            ));
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        match view {
            Some(m) => {
                let at = to_usize(pos);
                let src = m.get(at..at + BATCH_HEADER_LEN).ok_or_else(|| {
                    corrupt(&self.log_path, pos, "batch header beyond mapped file")
                })?;
                buf.copy_from_slice(src);
            }
            None => self
                .file
                .read_exact_at(&mut buf, pos)
                .map_err(|e| StorageError::io("read", &self.log_path, e))?,
        }
        let h =
            parse_batch_header(&buf).map_err(|e| corrupt(&self.log_path, pos, e.to_string()))?;
        if pos + h.total_len() as u64 > len {
            return Err(corrupt(
                &self.log_path,
                pos,
                "batch runs past the end of the segment",
            ));
        }
        Ok(h)
    }

    /// Position and header of the first batch whose last offset is `>= offset`.
    fn find_batch(
        &self,
        offset: i64,
        len: u64,
        view: Option<&Mmap>,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let rel = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut pos = self
            .index
            .read()
            .floor_offset(rel)
            .map(|(_, e)| u64::from(e.position))
            .unwrap_or(0);
        while pos < len {
            let h = self.header_at(pos, len, view)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, at most `max_bytes` (but the first batch
    /// regardless when `include_first`), stopping before any batch starting at `max_offset`.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        include_first: bool,
    ) -> Result<Option<SegmentRead>, StorageError> {
        let len = self.len();
        let view = self.view()?;
        let Some((start, first)) = self.find_batch(offset, len, view.as_deref())? else {
            return Ok(None);
        };
        if first.base_offset >= max_offset {
            return Ok(None);
        }
        let first_len = first.total_len();
        if !include_first && first_len > max_bytes {
            return Ok(None);
        }
        let region = match view {
            Some(m) => {
                let end = to_usize(len).min(m.len());
                Bytes::from_owner(MapOwner(m)).slice(to_usize(start)..end)
            }
            None => {
                let want = to_usize(len - start).min(max_bytes.max(first_len));
                let mut buf = vec![0u8; want];
                self.file
                    .read_exact_at(&mut buf, start)
                    .map_err(|e| StorageError::io("read", &self.log_path, e))?;
                Bytes::from(buf)
            }
        };
        let mut end = 0usize;
        let mut next_offset = first.base_offset;
        while end + BATCH_HEADER_LEN <= region.len() {
            let h = parse_batch_header(&region[end..])
                .map_err(|e| corrupt(&self.log_path, start + end as u64, e.to_string()))?;
            if h.base_offset >= max_offset {
                break;
            }
            let size = h.total_len();
            if end + size > region.len() || (end + size > max_bytes && !(end == 0 && include_first))
            {
                break;
            }
            end += size;
            next_offset = h.last_offset() + 1;
        }
        if end == 0 {
            return Ok(None);
        }
        Ok(Some(SegmentRead {
            bytes: region.slice(..end),
            next_offset,
        }))
    }

    /// First batch (base offset below `max_offset`, last offset at or above `min_offset`)
    /// whose max timestamp is `>= timestamp`: `(max(base offset, min_offset), max timestamp)`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        let len = self.len();
        let view = self.view()?;
        let mut pos = self
            .index
            .read()
            .last_below_timestamp(timestamp)
            .map(|(_, e)| u64::from(e.position))
            .unwrap_or(0);
        while pos < len {
            let h = self.header_at(pos, len, view.as_deref())?;
            if h.base_offset >= max_offset {
                break;
            }
            if h.max_timestamp >= timestamp && h.last_offset() >= min_offset {
                return Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Position of the first batch containing an offset `>= offset` (where a truncation to
    /// `offset` cuts), or `None` if every batch is below `offset`.
    pub(crate) fn cut_position(&self, offset: i64) -> Result<Option<(u64, i64)>, StorageError> {
        let len = self.len();
        let view = self.view()?;
        Ok(self
            .find_batch(offset, len, view.as_deref())?
            .map(|(p, h)| (p, h.base_offset)))
    }

    /// Writes the index files (via rename, never in place: a sealed index may be mapped) and
    /// switches to reading them through a map.
    fn persist_and_map_index(&self) -> Result<(), StorageError> {
        let mut ix = self.index.write();
        replace_file(&self.index_path, ix.offset_bytes())?;
        replace_file(&self.time_index_path, ix.time_bytes())?;
        let load = |p: &Path| -> Result<IndexData, StorageError> {
            let f = File::open(p).map_err(|e| StorageError::io("open", p, e))?;
            Ok(match map_readonly(&f, p)? {
                Some(m) => IndexData::Mapped(m),
                None => IndexData::Mem(Vec::new()),
            })
        };
        *ix = SegmentIndex::from_data(load(&self.index_path)?, load(&self.time_index_path)?);
        Ok(())
    }

    /// Writes the index files of the active segment (clean shutdown) without changing how it
    /// is read. Renamed into place, so a map of an older version stays valid.
    pub(crate) fn write_index_files(&self) -> Result<(), StorageError> {
        let ix = self.index.read();
        replace_file(&self.index_path, ix.offset_bytes())?;
        replace_file(&self.time_index_path, ix.time_bytes())?;
        Ok(())
    }

    /// Seals the active segment: index files written, reads switch to the memory map.
    pub(crate) fn seal(&self) -> Result<(), StorageError> {
        self.persist_and_map_index()?;
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Truncates the active segment at `position` (a batch boundary) and recomputes its state.
    pub(crate) fn truncate_active(
        &self,
        position: u64,
        index_interval: u64,
    ) -> Result<(), StorageError> {
        debug_assert!(
            !self.is_sealed(),
            "sealed segments are never truncated in place"
        );
        self.file
            .set_len(position)
            .map_err(|e| StorageError::io("truncate", &self.log_path, e))?;
        self.file
            .sync_all()
            .map_err(|e| StorageError::io("fsync", &self.log_path, e))?;
        let mut ix = self.index.write();
        ix.truncate_to_position(position);
        let mut state = Self::empty_state(self.base_offset);
        if let Some((o, t)) = ix.last() {
            state.valid_len = u64::from(o.position);
            state.next_offset = self.base_offset + i64::from(o.relative_offset);
            state.max_timestamp = t.max_timestamp;
            state.first_timestamp = self.first_timestamp();
        }
        let mut buf = vec![0u8; to_usize(position - state.valid_len)];
        self.file
            .read_exact_at(&mut buf, state.valid_len)
            .map_err(|e| StorageError::io("read", &self.log_path, e))?;
        let start = state.valid_len;
        if let Some(f) = scan(
            &buf,
            start,
            self.base_offset,
            &mut state,
            Some(&mut ix),
            index_interval,
            false,
        ) {
            return Err(corrupt(&self.log_path, f.position, f.reason));
        }
        self.bytes_since_entry
            .store(state.bytes_since_entry, Ordering::Relaxed);
        self.max_timestamp
            .store(state.max_timestamp, Ordering::Release);
        self.first_timestamp
            .store(state.first_timestamp, Ordering::Release);
        self.len.store(position, Ordering::Release);
        self.next_offset.store(state.next_offset, Ordering::Release);
        Ok(())
    }

    /// Replaces a sealed segment by a copy of its first `position` bytes (write-new + rename,
    /// so existing maps stay valid) and returns it reopened as the active segment.
    pub(crate) fn rewrite_prefix(
        &self,
        position: u64,
        index_interval: u64,
    ) -> Result<Segment, StorageError> {
        let tmp = tmp_path(&self.log_path);
        {
            let out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| StorageError::io("create", &tmp, e))?;
            let mut copied = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            while copied < position {
                let n = to_usize((position - copied).min(buf.len() as u64));
                self.file
                    .read_exact_at(&mut buf[..n], copied)
                    .map_err(|e| StorageError::io("read", &self.log_path, e))?;
                out.write_all_at(&buf[..n], copied)
                    .map_err(|e| StorageError::io("write", &tmp, e))?;
                copied += n as u64;
            }
            out.sync_all()
                .map_err(|e| StorageError::io("fsync", &tmp, e))?;
        }
        std::fs::rename(&tmp, &self.log_path).map_err(|e| StorageError::io("rename", &tmp, e))?;
        remove_if_exists(&self.index_path)?;
        remove_if_exists(&self.time_index_path)?;
        sync_dir(&self.dir)?;
        let (seg, truncation) =
            Segment::open(&self.dir, self.base_offset, true, false, index_interval)?;
        if let Some(t) = truncation {
            return Err(corrupt(&self.log_path, t.fault.position, t.fault.reason));
        }
        Ok(seg)
    }

    /// Removes the segment's files. Existing maps stay valid until dropped.
    pub(crate) fn delete_files(&self) -> Result<(), StorageError> {
        remove_if_exists(&self.log_path)?;
        remove_if_exists(&self.index_path)?;
        remove_if_exists(&self.time_index_path)
    }
}

/// Best-effort last offset of the (possibly damaged) batches starting at `from`: the offsets a
/// truncation drops, for the recovery log line.
fn last_offset_in(bytes: &[u8], from: u64) -> Option<i64> {
    let mut pos = to_usize(from);
    let mut last = None;
    while pos < bytes.len() {
        let Ok(h) = parse_batch_header(&bytes[pos..]) else {
            break;
        };
        last = Some(h.last_offset());
        pos = pos.saturating_add(h.total_len());
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(base_offset: i64, records: i64, position: usize, len: usize) -> PendingBatch {
        PendingBatch {
            base_offset,
            last_offset: base_offset + records - 1,
            max_timestamp: 1,
            position,
            len,
        }
    }

    fn invariant(e: StorageError) -> &'static str {
        match e {
            StorageError::InvariantViolated { invariant, .. } => invariant,
            other => panic!("not an invariant violation: {other:?}"),
        }
    }

    /// Invariant: an append continues the segment's offsets. Each broken form is refused
    /// before a byte is written.
    #[test]
    fn an_append_that_does_not_continue_the_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 10).unwrap();
        let data = [0u8; 200];
        seg.append(&data[..100], &[pending(10, 3, 0, 100)], 4096)
            .unwrap();
        assert_eq!((seg.next_offset(), seg.len()), (13, 100));
        let refused = [
            // A gap after the segment's end.
            (vec![pending(14, 1, 0, 100)], 100),
            // Going back over stored offsets.
            (vec![pending(12, 1, 0, 100)], 100),
            // A batch holding no offset.
            (vec![pending(13, 0, 0, 100)], 100),
            // The second batch does not follow the first.
            (vec![pending(13, 1, 0, 100), pending(15, 1, 100, 100)], 200),
            // Batches overlapping in the bytes, or not covering them.
            (vec![pending(13, 1, 0, 100), pending(14, 1, 50, 100)], 200),
            (vec![pending(13, 1, 0, 100)], 200),
        ];
        for (batches, len) in refused {
            let e = seg.append(&data[..len], &batches, 4096).unwrap_err();
            assert!(
                e.to_string().contains("invariant violated"),
                "{batches:?}: {e}"
            );
        }
        assert_eq!((seg.next_offset(), seg.len()), (13, 100));
        assert_eq!(std::fs::metadata(seg.log_path()).unwrap().len(), 100);
        // A batch that continues it is taken.
        seg.append(&data[..100], &[pending(13, 1, 0, 100)], 4096)
            .unwrap();
        assert_eq!((seg.next_offset(), seg.len()), (14, 200));
    }

    /// Invariant: index entries increase. A segment whose byte length went back behind its
    /// index (the state a bug would leave) refuses the append instead of indexing a batch
    /// before the last one.
    #[test]
    fn an_append_behind_the_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 0).unwrap();
        let data = [0u8; 100];
        seg.append(&data, &[pending(0, 1, 0, 100)], 1).unwrap();
        seg.len.store(0, Ordering::Release);
        let e = seg.append(&data, &[pending(1, 1, 0, 100)], 1).unwrap_err();
        assert_eq!(invariant(e), "index entries increase");
        assert_eq!(seg.index.read().len(), 1);
        assert_eq!(seg.next_offset(), 1);
    }
}
