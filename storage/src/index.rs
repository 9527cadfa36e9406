//! Sparse offset and time indexes of one segment.
//!
//! Both indexes get one entry at the same batches (every `index_interval_bytes` of log), so
//! entry `i` of the offset index and entry `i` of the time index describe the same batch:
//!
//! * `.index`: `relative_offset: u32, position: u32` (8 bytes, big-endian) — the batch whose base
//!   offset is `base + relative_offset` starts at byte `position` of the `.log` file.
//! * `.timeindex`: `max_timestamp_so_far: i64, relative_offset: u32` (12 bytes) — the largest
//!   batch timestamp in the segment up to and including that batch.
//!
//! The time index is therefore non-decreasing, and "the last entry whose timestamp is below T"
//! tells where a forward scan for the first batch with `max_timestamp >= T` may start. Keeping
//! the running maximum at every entry also lets truncation recompute the segment's exact
//! maximum timestamp by scanning at most one index interval.
//!
//! Active segments keep their entries in memory (the files are written when the segment is
//! sealed; the active segment is always rebuilt by the recovery scan on open). Sealed segments
//! map their files, so thousands of sealed segments cost page cache, not heap.

use memmap2::Mmap;

/// Bytes per offset index entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per time index entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// Entry bytes, either owned (active segment) or mapped (sealed segment).
#[derive(Debug)]
pub(crate) enum IndexData {
    /// In memory.
    Mem(Vec<u8>),
    /// Mapped from the index file of a sealed segment.
    Mapped(Mmap),
}

impl IndexData {
    fn bytes(&self) -> &[u8] {
        match self {
            IndexData::Mem(v) => v,
            IndexData::Mapped(m) => m,
        }
    }

    fn make_mut(&mut self) -> &mut Vec<u8> {
        if let IndexData::Mapped(m) = self {
            *self = IndexData::Mem(m.to_vec());
        }
        match self {
            IndexData::Mem(v) => v,
            // Just converted above.
            IndexData::Mapped(_) => unreachable!("converted to Mem above"),
        }
    }
}

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub max_timestamp: i64,
    pub relative_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// An index entry that would not follow the last one (see [`SegmentIndex::check_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotIncreasing {
    /// The last entry.
    pub last: OffsetEntry,
    /// The refused one.
    pub next: OffsetEntry,
}

impl std::fmt::Display for NotIncreasing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "index entry (relative offset {}, position {}) does not follow the last one (relative offset {}, position {})",
            self.next.relative_offset, self.next.position, self.last.relative_offset, self.last.position
        )
    }
}

/// The pair of parallel sparse indexes of one segment.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    offsets: IndexData,
    times: IndexData,
}

impl SegmentIndex {
    pub(crate) fn empty() -> Self {
        Self {
            offsets: IndexData::Mem(Vec::new()),
            times: IndexData::Mem(Vec::new()),
        }
    }

    pub(crate) fn from_data(offsets: IndexData, times: IndexData) -> Self {
        Self { offsets, times }
    }

    pub(crate) fn offset_bytes(&self) -> &[u8] {
        self.offsets.bytes()
    }

    pub(crate) fn time_bytes(&self) -> &[u8] {
        self.times.bytes()
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.bytes().len() / OFFSET_ENTRY_LEN
    }

    pub(crate) fn offset_entry(&self, i: usize) -> OffsetEntry {
        let b = self.offsets.bytes();
        let at = i * OFFSET_ENTRY_LEN;
        OffsetEntry {
            relative_offset: u32_at(b, at),
            position: u32_at(b, at + 4),
        }
    }

    pub(crate) fn time_entry(&self, i: usize) -> TimeEntry {
        let b = self.times.bytes();
        let at = i * TIME_ENTRY_LEN;
        TimeEntry {
            max_timestamp: i64_at(b, at),
            relative_offset: u32_at(b, at + 8),
        }
    }

    pub(crate) fn last(&self) -> Option<(OffsetEntry, TimeEntry)> {
        let n = self.len();
        (n > 0).then(|| (self.offset_entry(n - 1), self.time_entry(n - 1)))
    }

    /// Invariant: entries strictly increase in offset and position (lookups binary-search
    /// them; a step back would send a read to the wrong batch). `Err` if an entry at
    /// (`relative_offset`, `position`) would not follow the last one. O(1).
    pub(crate) fn check_next(
        &self,
        relative_offset: u32,
        position: u32,
    ) -> Result<(), NotIncreasing> {
        match self.last() {
            Some((last, _))
                if relative_offset <= last.relative_offset || position <= last.position =>
            {
                Err(NotIncreasing {
                    last,
                    next: OffsetEntry {
                        relative_offset,
                        position,
                    },
                })
            }
            _ => Ok(()),
        }
    }

    /// Appends an entry, refusing one that does not follow the last (see
    /// [`SegmentIndex::check_next`]); nothing is added then.
    pub(crate) fn push(
        &mut self,
        relative_offset: u32,
        position: u32,
        max_timestamp_so_far: i64,
    ) -> Result<(), NotIncreasing> {
        self.check_next(relative_offset, position)?;
        let o = self.offsets.make_mut();
        o.extend_from_slice(&relative_offset.to_be_bytes());
        o.extend_from_slice(&position.to_be_bytes());
        let t = self.times.make_mut();
        t.extend_from_slice(&max_timestamp_so_far.to_be_bytes());
        t.extend_from_slice(&relative_offset.to_be_bytes());
        Ok(())
    }

    /// Position of the last indexed batch whose relative offset is `<= relative_offset`,
    /// with that entry's index.
    pub(crate) fn floor_offset(&self, relative_offset: u32) -> Option<(usize, OffsetEntry)> {
        // Number of entries with relative_offset <= target.
        let n = partition_point(self.len(), |i| {
            self.offset_entry(i).relative_offset <= relative_offset
        });
        (n > 0).then(|| (n - 1, self.offset_entry(n - 1)))
    }

    /// The last entry whose running max timestamp is `< timestamp`: every batch up to and
    /// including it has a smaller timestamp.
    pub(crate) fn last_below_timestamp(&self, timestamp: i64) -> Option<(usize, OffsetEntry)> {
        let n = partition_point(self.len(), |i| self.time_entry(i).max_timestamp < timestamp);
        (n > 0).then(|| (n - 1, self.offset_entry(n - 1)))
    }

    /// Keeps only the entries whose batch starts before `position`.
    pub(crate) fn truncate_to_position(&mut self, position: u64) {
        let keep = partition_point(self.len(), |i| {
            u64::from(self.offset_entry(i).position) < position
        });
        if keep < self.len() {
            self.offsets.make_mut().truncate(keep * OFFSET_ENTRY_LEN);
            self.times.make_mut().truncate(keep * TIME_ENTRY_LEN);
        }
    }

    /// Checks the invariants a trustworthy index of a `log_len`-byte segment has: whole entries,
    /// same entry count in both files, strictly increasing offsets and positions, positions
    /// inside the log, non-decreasing timestamps, matching offsets. Returns the reason if not.
    pub(crate) fn check(&self, log_len: u64) -> Result<(), String> {
        let ob = self.offsets.bytes().len();
        let tb = self.times.bytes().len();
        if !ob.is_multiple_of(OFFSET_ENTRY_LEN) {
            return Err(format!(
                "offset index size {ob} is not a multiple of {OFFSET_ENTRY_LEN}"
            ));
        }
        if !tb.is_multiple_of(TIME_ENTRY_LEN) {
            return Err(format!(
                "time index size {tb} is not a multiple of {TIME_ENTRY_LEN}"
            ));
        }
        if ob / OFFSET_ENTRY_LEN != tb / TIME_ENTRY_LEN {
            return Err(format!(
                "offset index has {} entries, time index {}",
                ob / OFFSET_ENTRY_LEN,
                tb / TIME_ENTRY_LEN
            ));
        }
        let mut prev: Option<(OffsetEntry, TimeEntry)> = None;
        for i in 0..self.len() {
            let o = self.offset_entry(i);
            let t = self.time_entry(i);
            if u64::from(o.position) >= log_len {
                return Err(format!(
                    "entry {i} points at byte {} beyond the log ({log_len} bytes)",
                    o.position
                ));
            }
            if t.relative_offset != o.relative_offset {
                return Err(format!("entry {i}: time and offset index disagree"));
            }
            if let Some((po, pt)) = prev {
                if o.relative_offset <= po.relative_offset || o.position <= po.position {
                    return Err(format!("entry {i} does not increase"));
                }
                if t.max_timestamp < pt.max_timestamp {
                    return Err(format!("entry {i}: time index decreases"));
                }
            }
            prev = Some((o, t));
        }
        Ok(())
    }
}

/// First `i` in `0..n` for which `pred(i)` is false, assuming `pred` is true then false.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut ix = SegmentIndex::empty();
        ix.push(0, 0, 10).unwrap();
        ix.push(5, 100, 10).unwrap();
        ix.push(9, 250, 30).unwrap();
        ix
    }

    /// Invariant: index entries strictly increase. A push that does not is refused and adds
    /// nothing.
    #[test]
    fn an_entry_that_does_not_increase_is_refused() {
        let mut ix = sample();
        for (rel, pos) in [(9, 300), (8, 300), (12, 250), (12, 200)] {
            let e = ix.push(rel, pos, 40).unwrap_err();
            assert_eq!(
                e.last,
                OffsetEntry {
                    relative_offset: 9,
                    position: 250
                }
            );
            assert_eq!(e.next.relative_offset, rel);
            assert!(e.to_string().contains("does not follow"), "{e}");
        }
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.time_bytes().len(), 3 * TIME_ENTRY_LEN);
        ix.push(10, 251, 40).unwrap();
        assert_eq!(ix.len(), 4);
    }

    #[test]
    fn floor_and_time_lookup() {
        let ix = sample();
        assert_eq!(ix.floor_offset(4).map(|(i, _)| i), Some(0));
        assert_eq!(
            ix.floor_offset(5).map(|(i, e)| (i, e.position)),
            Some((1, 100))
        );
        assert_eq!(ix.floor_offset(100).map(|(i, _)| i), Some(2));
        assert_eq!(ix.last_below_timestamp(10), None);
        assert_eq!(ix.last_below_timestamp(11).map(|(i, _)| i), Some(1));
        assert_eq!(ix.last_below_timestamp(31).map(|(i, _)| i), Some(2));
        assert!(ix.check(251).is_ok());
        assert!(ix.check(250).is_err());
    }

    #[test]
    fn truncate_drops_entries_at_or_after_position() {
        let mut ix = sample();
        ix.truncate_to_position(250);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.time_bytes().len(), 2 * TIME_ENTRY_LEN);
    }

    #[test]
    fn check_rejects_non_increasing_entries() {
        // Index files read from disk are checked as a whole (push refuses such entries).
        let mut bytes = sample().offset_bytes().to_vec();
        let mut times = sample().time_bytes().to_vec();
        bytes.extend_from_slice(&9u32.to_be_bytes());
        bytes.extend_from_slice(&300u32.to_be_bytes());
        times.extend_from_slice(&40i64.to_be_bytes());
        times.extend_from_slice(&9u32.to_be_bytes());
        let ix = SegmentIndex::from_data(IndexData::Mem(bytes), IndexData::Mem(times));
        assert!(ix.check(1000).unwrap_err().contains("does not increase"));
        let mut ix = sample();
        ix.push(12, 300, 5).unwrap();
        assert!(ix.check(1000).unwrap_err().contains("decreases"));
        let ix = SegmentIndex::from_data(IndexData::Mem(vec![0; 8]), IndexData::Mem(vec![0; 11]));
        assert!(ix.check(1000).is_err());
    }
}
