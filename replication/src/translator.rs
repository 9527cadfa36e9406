//! The offset translator: Raft indexes ↔ Kafka offsets for one partition.
//!
//! Why it exists: the Raft log of a partition *is* its Kafka partition log, but the two number
//! things differently. Raft gives every entry one index; a Kafka batch occupies as many offsets
//! as it has records; and some Raft entries (a new leader's empty entry, configuration changes)
//! carry no records at all and must never be seen by a consumer. So only data entries are stored
//! in the partition log (one Raft data entry = one Kafka record batch, its term in the batch's
//! partition-leader-epoch field), while control entries live in the small Raft state file next
//! to it (see `state_file`). This type is the in-memory map between the two numbering schemes,
//! in the spirit of Redpanda's offset translator: it knows, for each Raft index in the window
//! `[first_index, last_index]`, whether the entry is data (and its Kafka offset range) or
//! control (and its payload).
//!
//! Rebuilding after a restart needs only the persisted control entries, the window's anchor
//! (`first_index`, the term before it, the Kafka offset where it starts) and the batch headers of
//! the partition log: walking the indexes upwards, an index is a control entry if the state file
//! has one there and otherwise the next batch of the log. That is only right if no data batch
//! can become durable before a control entry that precedes it, which is why the store persists
//! the state file *before* appending the data of the same Raft `Ready` (see `log_store`).
//! A control entry that no longer fits (it follows a data entry that a torn write removed) is
//! stale: [`Rebuild::finish`] drops it and reports it, so the caller rewrites the state file.
//!
//! Memory: 16 bytes per entry in the window (a Kafka offset and a term). A sparse form (one
//! anchor per run of entries, resolved through batch headers) is the known next step for logs of
//! tens of millions of batches.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::eraftpb::EntryType;

/// A Raft entry that carries no Kafka records: a leader's empty entry or a configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEntry {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// Raft entry type (normal with empty data, or a configuration change).
    pub entry_type: EntryType,
    /// Entry payload (an encoded configuration change, or empty).
    pub data: Bytes,
    /// Entry context.
    pub context: Bytes,
}

/// One data batch of the partition log, as the translator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// Kafka offset of the batch's first record.
    pub base_offset: i64,
    /// Kafka offset after the batch's last record.
    pub next_offset: i64,
    /// Raft term (the batch's partition leader epoch).
    pub term: u64,
}

/// Where a Raft entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryLocation<'a> {
    /// A control entry, stored in the Raft state file.
    Control(&'a ControlEntry),
    /// A data entry: one batch of the partition log.
    Data(BatchSpan),
}

/// What is inconsistent in a translator operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranslatorError {
    /// An entry was appended at an index other than `last_index + 1`.
    #[error("entry index {got} does not follow the last index {last}")]
    NotContiguous {
        /// Index given.
        got: u64,
        /// Current last index.
        last: u64,
    },
    /// A data entry does not start where the previous data ended, or is empty.
    #[error("batch at index {index} spans offsets [{base_offset}, {next_offset}) but the log ends at {end_offset}")]
    OffsetMismatch {
        /// Raft index of the batch.
        index: u64,
        /// Its first offset.
        base_offset: i64,
        /// Offset after it.
        next_offset: i64,
        /// Where the translator expected it to start.
        end_offset: i64,
    },
    /// Terms must not decrease along a Raft log.
    #[error("entry {index} has term {term}, lower than the previous entry's term {previous}")]
    TermDecreases {
        /// Raft index.
        index: u64,
        /// Its term.
        term: u64,
        /// Term of the entry before it.
        previous: u64,
    },
    /// The index is outside `[first_index, last_index + 1]`.
    #[error("index {index} is outside the window [{first}, {last}]")]
    OutOfWindow {
        /// Index given.
        index: u64,
        /// First index of the window.
        first: u64,
        /// Last index of the window (`first - 1` when empty).
        last: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Data: the batch's base offset. Control: the Kafka offset the next data entry will get.
    offset: i64,
    term: u64,
}

/// Raft index ↔ Kafka offset map of one partition (see the module docs).
#[derive(Debug, Clone)]
pub struct OffsetTranslator {
    first_index: u64,
    prev_term: u64,
    start_offset: i64,
    slots: Vec<Slot>,
    controls: BTreeMap<u64, ControlEntry>,
    end_offset: i64,
}

impl OffsetTranslator {
    /// An empty window whose first entry will get Raft index `first_index` (at least 1) and, if
    /// it is data, Kafka offset `start_offset`; `prev_term` is the term of index
    /// `first_index - 1` (0 for a new log).
    pub fn new(first_index: u64, prev_term: u64, start_offset: i64) -> Self {
        Self {
            first_index: first_index.max(1),
            prev_term,
            start_offset,
            slots: Vec::new(),
            controls: BTreeMap::new(),
            end_offset: start_offset,
        }
    }

    /// Starts rebuilding a translator from persisted control entries; feed it the log's batches
    /// in order with [`Rebuild::push_batch`].
    pub fn rebuild(
        first_index: u64,
        prev_term: u64,
        start_offset: i64,
        controls: impl IntoIterator<Item = ControlEntry>,
    ) -> Rebuild {
        Rebuild {
            translator: Self::new(first_index, prev_term, start_offset),
            pending: controls.into_iter().map(|c| (c.index, c)).collect(),
        }
    }

    /// Raft index of the first entry in the window.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Raft index of the last entry (`first_index - 1` when the window is empty).
    pub fn last_index(&self) -> u64 {
        self.first_index + self.slots.len() as u64 - 1
    }

    /// Term of the entry just before the window.
    pub fn prev_term(&self) -> u64 {
        self.prev_term
    }

    /// Kafka offset at the start of the window.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Kafka offset after the last data entry (the partition log's end offset).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Term of the last entry (or of the entry before the window when it is empty).
    pub fn last_term(&self) -> u64 {
        self.slots.last().map_or(self.prev_term, |s| s.term)
    }

    fn slot(&self, index: u64) -> Option<&Slot> {
        let i = index.checked_sub(self.first_index)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    /// Term of entry `index`, for indexes in `[first_index - 1, last_index]`.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index + 1 == self.first_index {
            return Some(self.prev_term);
        }
        self.slot(index).map(|s| s.term)
    }

    /// Where entry `index` lives, for indexes in the window.
    pub fn locate(&self, index: u64) -> Option<EntryLocation<'_>> {
        let slot = self.slot(index)?;
        if let Some(c) = self.controls.get(&index) {
            return Some(EntryLocation::Control(c));
        }
        Some(EntryLocation::Data(BatchSpan {
            base_offset: slot.offset,
            next_offset: self.offset_after(index),
            term: slot.term,
        }))
    }

    /// Kafka offset after every data entry with an index `<= index`: the high watermark when
    /// `index` is the commit index. Below the window it is the window's start offset, above it
    /// the end offset.
    pub fn offset_after(&self, index: u64) -> i64 {
        if index < self.first_index {
            return self.start_offset;
        }
        self.slot(index + 1).map_or(self.end_offset, |s| s.offset)
    }

    /// Kafka offset where entry `index` starts (for `last_index + 1`, the end offset): the
    /// offset to truncate the partition log to when Raft replaces entries from `index` on.
    pub fn offset_at(&self, index: u64) -> Result<i64, TranslatorError> {
        if index == self.last_index() + 1 {
            return Ok(self.end_offset);
        }
        self.slot(index)
            .map(|s| s.offset)
            .ok_or_else(|| self.out_of_window(index))
    }

    /// Raft index of the data entry whose records include Kafka offset `offset`.
    pub fn index_of_offset(&self, offset: i64) -> Option<u64> {
        if offset < self.start_offset || offset >= self.end_offset {
            return None;
        }
        // Slots are sorted by offset, and a control slot carries the offset of the data entry
        // after it, so the last slot starting at or before `offset` is the data entry holding it
        // (controls at that offset come before it; controls after it start past `offset`).
        let i = self
            .slots
            .partition_point(|s| s.offset <= offset)
            .checked_sub(1)?;
        let index = self.first_index + i as u64;
        (!self.controls.contains_key(&index)).then_some(index)
    }

    /// Number of entries in the window.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the window holds no entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The control entries in the window, by index.
    pub fn controls(&self) -> impl Iterator<Item = &ControlEntry> {
        self.controls.values()
    }

    fn out_of_window(&self, index: u64) -> TranslatorError {
        TranslatorError::OutOfWindow {
            index,
            first: self.first_index,
            last: self.last_index(),
        }
    }

    fn check_next(&self, index: u64, term: u64) -> Result<(), TranslatorError> {
        let last = self.last_index();
        if index != last + 1 {
            return Err(TranslatorError::NotContiguous { got: index, last });
        }
        let previous = self.last_term();
        if term < previous {
            return Err(TranslatorError::TermDecreases {
                index,
                term,
                previous,
            });
        }
        Ok(())
    }

    /// Appends data entry `index` (one batch covering `[span.base_offset, span.next_offset)`).
    ///
    /// Invariant (offsets monotonic in Raft index): a data entry starts exactly where the
    /// previous data entry ended and holds at least one offset, at the next index, in a term no
    /// lower than the last. Anything else is refused with a [`TranslatorError`] and changes
    /// nothing; the store then fails the group (logged at error level) rather than map an index
    /// to the wrong records.
    pub fn push_data(&mut self, index: u64, span: BatchSpan) -> Result<(), TranslatorError> {
        self.check_next(index, span.term)?;
        if span.base_offset != self.end_offset || span.next_offset <= span.base_offset {
            return Err(TranslatorError::OffsetMismatch {
                index,
                base_offset: span.base_offset,
                next_offset: span.next_offset,
                end_offset: self.end_offset,
            });
        }
        self.slots.push(Slot {
            offset: span.base_offset,
            term: span.term,
        });
        self.end_offset = span.next_offset;
        Ok(())
    }

    /// Appends a control entry at `entry.index`; it occupies no Kafka offset.
    pub fn push_control(&mut self, entry: ControlEntry) -> Result<(), TranslatorError> {
        self.check_next(entry.index, entry.term)?;
        self.slots.push(Slot {
            offset: self.end_offset,
            term: entry.term,
        });
        self.controls.insert(entry.index, entry);
        Ok(())
    }

    /// Removes the entries from `index` on (a Raft log conflict) and returns the Kafka offset
    /// the partition log must be truncated to. `index` may be `last_index + 1` (nothing to do).
    pub fn truncate_from(&mut self, index: u64) -> Result<i64, TranslatorError> {
        let offset = self.offset_at(index)?;
        if index < self.first_index {
            return Err(self.out_of_window(index));
        }
        let keep = usize::try_from(index - self.first_index).unwrap_or(usize::MAX);
        self.slots.truncate(keep);
        self.controls.split_off(&index);
        self.end_offset = offset;
        Ok(offset)
    }

    /// Moves the start of the window to `index` (Raft log compaction, i.e. retention): entries
    /// below it are forgotten. `index` may be `last_index + 1` (everything forgotten).
    pub fn compact_to(&mut self, index: u64) -> Result<(), TranslatorError> {
        if index <= self.first_index {
            return if index == self.first_index {
                Ok(())
            } else {
                Err(self.out_of_window(index))
            };
        }
        let offset = self.offset_at(index)?;
        let prev_term = self
            .term(index - 1)
            .ok_or_else(|| self.out_of_window(index))?;
        let drop = usize::try_from(index - self.first_index).unwrap_or(usize::MAX);
        self.slots.drain(..drop);
        self.controls = self.controls.split_off(&index);
        self.first_index = index;
        self.prev_term = prev_term;
        self.start_offset = offset;
        Ok(())
    }
}

/// A translator being rebuilt from the partition log (see [`OffsetTranslator::rebuild`]).
#[derive(Debug)]
pub struct Rebuild {
    translator: OffsetTranslator,
    pending: BTreeMap<u64, ControlEntry>,
}

impl Rebuild {
    fn absorb_controls(&mut self) -> Result<(), TranslatorError> {
        let next = self.translator.last_index() + 1;
        while let Some(c) = self.pending.remove(&(self.translator.last_index() + 1)) {
            self.translator.push_control(c)?;
        }
        debug_assert!(self.translator.last_index() + 1 >= next);
        Ok(())
    }

    /// Adds the next batch of the log as the next data entry (after any control entries that
    /// come first).
    pub fn push_batch(&mut self, span: BatchSpan) -> Result<(), TranslatorError> {
        self.absorb_controls()?;
        let index = self.translator.last_index() + 1;
        self.translator.push_data(index, span)
    }

    /// The rebuilt translator, and the persisted control entries that did not fit (below the
    /// window, or after a gap left by lost data): the caller must rewrite the state file without
    /// them.
    pub fn finish(mut self) -> Result<(OffsetTranslator, Vec<ControlEntry>), TranslatorError> {
        self.absorb_controls()?;
        let stale = std::mem::take(&mut self.pending).into_values().collect();
        Ok((self.translator, stale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(index: u64, term: u64) -> ControlEntry {
        ControlEntry {
            index,
            term,
            entry_type: EntryType::EntryNormal,
            data: Bytes::new(),
            context: Bytes::new(),
        }
    }

    fn span(base: i64, records: i64, term: u64) -> BatchSpan {
        BatchSpan {
            base_offset: base,
            next_offset: base + records,
            term,
        }
    }

    #[test]
    fn control_entries_take_indexes_but_no_offsets() {
        let mut t = OffsetTranslator::new(1, 0, 0);
        t.push_control(control(1, 1)).unwrap();
        t.push_data(2, span(0, 3, 1)).unwrap();
        t.push_data(3, span(3, 2, 1)).unwrap();
        t.push_control(control(4, 2)).unwrap();
        t.push_data(5, span(5, 1, 2)).unwrap();
        assert_eq!(t.last_index(), 5);
        assert_eq!(t.end_offset(), 6);
        assert_eq!(t.offset_after(0), 0);
        assert_eq!(t.offset_after(1), 0);
        assert_eq!(t.offset_after(2), 3);
        assert_eq!(t.offset_after(3), 5);
        assert_eq!(t.offset_after(4), 5);
        assert_eq!(t.offset_after(5), 6);
        assert_eq!(t.offset_after(99), 6);
        assert!(matches!(t.locate(4), Some(EntryLocation::Control(c)) if c.term == 2));
        assert_eq!(t.locate(3), Some(EntryLocation::Data(span(3, 2, 1))));
        assert_eq!(t.index_of_offset(0), Some(2));
        assert_eq!(t.index_of_offset(2), Some(2));
        assert_eq!(t.index_of_offset(4), Some(3));
        assert_eq!(t.index_of_offset(5), Some(5));
        assert_eq!(t.index_of_offset(6), None);
        assert_eq!(t.index_of_offset(-1), None);
        assert_eq!(t.term(0), Some(0));
        assert_eq!(t.term(4), Some(2));
        assert_eq!(t.term(6), None);
    }

    /// Invariant: offsets are monotonic in Raft index. Entries that skip an index, do not start
    /// where the data ends, hold no offset, or lower the term are refused.
    #[test]
    fn bad_appends_are_rejected() {
        let mut t = OffsetTranslator::new(1, 0, 10);
        assert_eq!(
            t.push_data(2, span(10, 1, 1)),
            Err(TranslatorError::NotContiguous { got: 2, last: 0 })
        );
        assert!(matches!(
            t.push_data(1, span(11, 1, 1)),
            Err(TranslatorError::OffsetMismatch { .. })
        ));
        assert!(matches!(
            t.push_data(1, span(10, 0, 1)),
            Err(TranslatorError::OffsetMismatch { .. })
        ));
        t.push_data(1, span(10, 1, 3)).unwrap();
        assert_eq!(
            t.push_control(control(2, 2)),
            Err(TranslatorError::TermDecreases {
                index: 2,
                term: 2,
                previous: 3
            })
        );
        assert!(matches!(
            t.truncate_from(5),
            Err(TranslatorError::OutOfWindow { .. })
        ));
        assert!(matches!(
            t.compact_to(0),
            Err(TranslatorError::OutOfWindow { .. })
        ));
    }

    #[test]
    fn truncation_returns_the_log_offset_and_drops_controls() {
        let mut t = OffsetTranslator::new(1, 0, 0);
        t.push_data(1, span(0, 2, 1)).unwrap();
        t.push_control(control(2, 2)).unwrap();
        t.push_data(3, span(2, 2, 2)).unwrap();
        assert_eq!(t.truncate_from(4), Ok(4));
        assert_eq!(t.truncate_from(3), Ok(2));
        assert_eq!(t.last_index(), 2);
        assert_eq!(t.truncate_from(2), Ok(2));
        assert_eq!(t.controls().count(), 0);
        assert_eq!(t.end_offset(), 2);
        t.push_data(2, span(2, 1, 3)).unwrap();
        assert_eq!(t.offset_after(2), 3);
    }

    #[test]
    fn compaction_moves_the_window() {
        let mut t = OffsetTranslator::new(1, 0, 0);
        t.push_control(control(1, 1)).unwrap();
        t.push_data(2, span(0, 2, 1)).unwrap();
        t.push_data(3, span(2, 2, 2)).unwrap();
        t.compact_to(3).unwrap();
        assert_eq!(t.first_index(), 3);
        assert_eq!(t.prev_term(), 1);
        assert_eq!(t.start_offset(), 2);
        assert_eq!(t.term(2), Some(1));
        assert_eq!(t.term(1), None);
        assert_eq!(t.controls().count(), 0);
        assert_eq!(t.offset_after(1), 2);
        t.compact_to(4).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.last_index(), 3);
        assert_eq!(t.start_offset(), 4);
        assert_eq!(t.term(3), Some(2));
    }

    #[test]
    fn rebuild_interleaves_and_drops_stale_controls() {
        let mut r = OffsetTranslator::rebuild(
            1,
            0,
            0,
            vec![control(1, 1), control(3, 2), control(4, 2), control(7, 3)],
        );
        r.push_batch(span(0, 1, 1)).unwrap(); // index 2
        r.push_batch(span(1, 1, 2)).unwrap(); // index 5 (after controls 3 and 4)
        let (t, stale) = r.finish().unwrap();
        assert_eq!(t.last_index(), 5);
        assert_eq!(stale.iter().map(|c| c.index).collect::<Vec<_>>(), vec![7]);
        assert_eq!(t.locate(5), Some(EntryLocation::Data(span(1, 1, 2))));
    }
}
