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

    pub(crate) fn push(&mut self, relative_offset: u32, position: u32, max_timestamp_so_far: i64) {
        let o = self.offsets.make_mut();
        o.extend_from_slice(&relative_offset.to_be_bytes());
        o.extend_from_slice(&position.to_be_bytes());
        let t = self.times.make_mut();
        t.extend_from_slice(&max_timestamp_so_far.to_be_bytes());
        t.extend_from_slice(&relative_offset.to_be_bytes());
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
        ix.push(0, 0, 10);
        ix.push(5, 100, 10);
        ix.push(9, 250, 30);
        ix
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
        let mut ix = sample();
        ix.push(9, 300, 40);
        assert!(ix.check(1000).unwrap_err().contains("does not increase"));
        let mut ix = sample();
        ix.push(12, 300, 5);
        assert!(ix.check(1000).unwrap_err().contains("decreases"));
        let ix = SegmentIndex::from_data(IndexData::Mem(vec![0; 8]), IndexData::Mem(vec![0; 11]));
        assert!(ix.check(1000).is_err());
    }
}
