//! Which upstream records are safely in the local log, and from where a
//! recovery would have to look.
//!
//! The records of one upstream batch fan out to several target partitions
//! and are acknowledged in any order across them. An upstream partition's
//! position may only move past a batch once every record of it is
//! acknowledged (or deliberately not written: skipped, or found already
//! present after a restart). Each upstream batch is an [`Entry`] in its
//! partition's queue; positions advance as entries at the front finish.
//!
//! The checkpoint also needs, per target partition, an offset below which
//! everything is covered by the upstream positions (see `checkpoint`).
//! That is the lowest target offset of any record belonging to an entry
//! still in a queue — such a record is acknowledged but its upstream
//! position has not moved past it yet — and of any record found present at
//! recovery and not yet passed; without either, the end of what was
//! acknowledged.

use std::collections::{BTreeMap, HashMap, VecDeque};

use starlog_clients::TopicPartition;

/// Identifies an entry: upstream partition and sequence within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryId {
    /// Upstream partition.
    pub tp: TopicPartition,
    /// Sequence number within the partition's queue.
    pub seq: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    first: i64,
    next: i64,
    remaining: usize,
    sealed: bool,
    low: HashMap<TopicPartition, i64>,
}

#[derive(Debug, Default)]
struct Upstream {
    position: i64,
    next_seq: u64,
    queue: VecDeque<Entry>,
}

/// The acknowledgement state of one mirror run.
#[derive(Debug, Default)]
pub struct Tracker {
    upstream: BTreeMap<TopicPartition, Upstream>,
    acked_end: BTreeMap<TopicPartition, i64>,
    /// Found present at recovery, not yet passed: upstream tp → upstream
    /// offset → (target tp, target offset).
    recovered: HashMap<TopicPartition, BTreeMap<i64, (TopicPartition, i64)>>,
    in_flight: usize,
}

impl Tracker {
    /// Starts tracking `tp` at `position`.
    pub fn track(&mut self, tp: TopicPartition, position: i64) {
        self.upstream.entry(tp).or_default().position = position;
    }

    /// Starts tracking a target partition whose log ends at `end`.
    pub fn track_target(&mut self, tp: TopicPartition, end: i64) {
        let e = self.acked_end.entry(tp).or_insert(end);
        *e = (*e).max(end);
    }

    /// Remembers a record found in the local log at recovery.
    pub fn add_recovered(
        &mut self,
        source: TopicPartition,
        offset: i64,
        at: (TopicPartition, i64),
    ) {
        self.recovered.entry(source).or_default().insert(offset, at);
    }

    /// Where `tp` was found at recovery for upstream `offset`, removing it
    /// (the caller will not write it again).
    pub fn take_recovered(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
    ) -> Option<(TopicPartition, i64)> {
        let m = self.recovered.get_mut(tp)?;
        let r = m.remove(&offset);
        if m.is_empty() {
            self.recovered.remove(tp);
        }
        r
    }

    /// Forgets recovered records of `tp` below `position`: the upstream
    /// moved past them without re-reading them (e.g. its retention removed
    /// them), so they no longer hold a target's covered offset back.
    pub fn drop_recovered_below(&mut self, tp: &TopicPartition, position: i64) {
        if let Some(m) = self.recovered.get_mut(tp) {
            *m = m.split_off(&position);
            if m.is_empty() {
                self.recovered.remove(tp);
            }
        }
    }

    /// Number of recovered records not yet passed.
    pub fn recovered_pending(&self) -> usize {
        self.recovered.values().map(BTreeMap::len).sum()
    }

    /// The current position of `tp` (next offset not yet covered).
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        let u = self.upstream.get(tp)?;
        Some(u.queue.front().map_or(u.position, |e| e.first))
    }

    /// Records produced and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Opens an entry for upstream offsets `[first, next)` of `tp`.
    pub fn begin(&mut self, tp: &TopicPartition, first: i64, next: i64) -> EntryId {
        let u = self.upstream.entry(tp.clone()).or_default();
        let seq = u.next_seq;
        u.next_seq += 1;
        u.queue.push_back(Entry {
            seq,
            first,
            next,
            remaining: 0,
            sealed: false,
            low: HashMap::new(),
        });
        EntryId {
            tp: tp.clone(),
            seq,
        }
    }

    fn entry(&mut self, id: &EntryId) -> Option<&mut Entry> {
        let u = self.upstream.get_mut(&id.tp)?;
        let front = u.queue.front()?.seq;
        let idx = usize::try_from(id.seq.checked_sub(front)?).ok()?;
        u.queue.get_mut(idx)
    }

    /// A record of the entry was handed to the producer.
    pub fn sent(&mut self, id: &EntryId) {
        if let Some(e) = self.entry(id) {
            e.remaining += 1;
            self.in_flight += 1;
        }
    }

    /// A record of the entry is in the local log at `at` (acknowledged now,
    /// or found there at recovery when `was_sent` is false).
    pub fn landed(&mut self, id: &EntryId, at: (TopicPartition, i64), was_sent: bool) {
        let (tp, offset) = at;
        let end = self.acked_end.entry(tp.clone()).or_insert(offset + 1);
        *end = (*end).max(offset + 1);
        if let Some(e) = self.entry(id) {
            let low = e.low.entry(tp).or_insert(offset);
            *low = (*low).min(offset);
            if was_sent {
                e.remaining = e.remaining.saturating_sub(1);
            }
        }
        if was_sent {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.advance(&id.tp);
    }

    /// A whole batch of `records` records of the entry was handed to the
    /// producer as one delivery (pass-through).
    pub fn sent_batch(&mut self, id: &EntryId, records: usize) {
        if let Some(e) = self.entry(id) {
            e.remaining += 1;
            self.in_flight += records;
        }
    }

    /// A pass-through batch of the entry is in the local log: `records`
    /// records from `at` on (acknowledged now, or found there at recovery
    /// when `was_sent` is false).
    pub fn landed_batch(
        &mut self,
        id: &EntryId,
        at: (TopicPartition, i64),
        records: usize,
        was_sent: bool,
    ) {
        let (tp, offset) = at;
        let next = offset + records as i64;
        let end = self.acked_end.entry(tp.clone()).or_insert(next);
        *end = (*end).max(next);
        if let Some(e) = self.entry(id) {
            let low = e.low.entry(tp).or_insert(offset);
            *low = (*low).min(offset);
            if was_sent {
                e.remaining = e.remaining.saturating_sub(1);
            }
        }
        if was_sent {
            self.in_flight = self.in_flight.saturating_sub(records);
        }
        self.advance(&id.tp);
    }

    /// A pass-through batch of `records` records will never be acknowledged.
    pub fn failed_batch(&mut self, _id: &EntryId, records: usize) {
        self.in_flight = self.in_flight.saturating_sub(records);
    }

    /// Whether any upstream offset in `[from, to)` of `tp` was found in the
    /// local log at recovery.
    pub fn has_recovered_in(&self, tp: &TopicPartition, from: i64, to: i64) -> bool {
        self.recovered
            .get(tp)
            .is_some_and(|m| m.range(from..to).next().is_some())
    }

    /// A record of the entry will never be acknowledged (its produce
    /// failed): it no longer counts as in flight, and the entry can never
    /// complete, so the position stays before it.
    pub fn failed(&mut self, _id: &EntryId) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Shortens an open entry to end before `next` (a `stop` at that
    /// offset: it and what follows are not covered).
    pub fn truncate(&mut self, id: &EntryId, next: i64) {
        if let Some(e) = self.entry(id) {
            e.next = e.next.min(next);
        }
    }

    /// No more records will be added to the entry.
    pub fn seal(&mut self, id: &EntryId) {
        if let Some(e) = self.entry(id) {
            e.sealed = true;
        }
        self.advance(&id.tp);
    }

    fn advance(&mut self, tp: &TopicPartition) {
        let Some(u) = self.upstream.get_mut(tp) else {
            return;
        };
        while u
            .queue
            .front()
            .is_some_and(|e| e.sealed && e.remaining == 0)
        {
            if let Some(e) = u.queue.pop_front() {
                u.position = u.position.max(e.next);
            }
        }
    }

    /// Upstream positions and, for every target partition known, the offset
    /// below which everything is covered.
    pub fn snapshot(&self) -> (BTreeMap<TopicPartition, i64>, BTreeMap<TopicPartition, i64>) {
        let positions = self
            .upstream
            .iter()
            .map(|(tp, u)| (tp.clone(), u.queue.front().map_or(u.position, |e| e.first)))
            .collect();
        let mut low: BTreeMap<TopicPartition, i64> = self.acked_end.clone();
        let mut lower = |tp: &TopicPartition, o: i64| {
            if let Some(l) = low.get_mut(tp) {
                *l = (*l).min(o);
            } else {
                low.insert(tp.clone(), o);
            }
        };
        for u in self.upstream.values() {
            for e in &u.queue {
                for (tp, o) in &e.low {
                    lower(tp, *o);
                }
            }
        }
        for m in self.recovered.values() {
            for (tp, o) in m.values() {
                lower(tp, *o);
            }
        }
        (positions, low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn position_waits_for_every_record_of_a_batch() {
        let up = tp("day1", 0);
        let (a, b) = (tp("buf", 0), tp("buf", 1));
        let mut t = Tracker::default();
        t.track(up.clone(), 10);
        t.track_target(a.clone(), 100);
        t.track_target(b.clone(), 200);
        let e1 = t.begin(&up, 10, 13);
        for _ in 0..3 {
            t.sent(&e1);
        }
        t.seal(&e1);
        let e2 = t.begin(&up, 13, 14);
        t.sent(&e2);
        t.seal(&e2);
        assert_eq!(t.in_flight(), 4);
        // The second batch is acknowledged first: nothing moves.
        t.landed(&e2, (b.clone(), 200), true);
        t.landed(&e1, (a.clone(), 100), true);
        t.landed(&e1, (b.clone(), 201), true);
        assert_eq!(t.position(&up), Some(10));
        let (pos, low) = t.snapshot();
        assert_eq!(pos[&up], 10);
        assert_eq!(low[&a], 100, "acked but not covered");
        assert_eq!(low[&b], 200);
        t.landed(&e1, (a.clone(), 101), true);
        assert_eq!(t.position(&up), Some(14));
        let (pos, low) = t.snapshot();
        assert_eq!(pos[&up], 14);
        assert_eq!(low[&a], 102);
        assert_eq!(low[&b], 202);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn recovered_records_hold_the_low_mark_until_passed() {
        let up = tp("day1", 0);
        let a = tp("buf", 0);
        let mut t = Tracker::default();
        t.track(up.clone(), 5);
        t.track_target(a.clone(), 50);
        t.add_recovered(up.clone(), 6, (a.clone(), 42));
        assert_eq!(t.snapshot().1[&a], 42);
        let e = t.begin(&up, 5, 7);
        t.sent(&e);
        assert_eq!(t.take_recovered(&up, 6), Some((a.clone(), 42)));
        t.landed(&e, (a.clone(), 42), false);
        t.seal(&e);
        assert_eq!(t.snapshot().1[&a], 42, "record 5 still in flight");
        t.landed(&e, (a.clone(), 50), true);
        let (pos, low) = t.snapshot();
        assert_eq!(pos[&up], 7);
        assert_eq!(low[&a], 51);
        assert_eq!(t.recovered_pending(), 0);
        t.add_recovered(up.clone(), 3, (a.clone(), 10));
        t.add_recovered(up.clone(), 9, (a.clone(), 11));
        t.drop_recovered_below(&up, 8);
        assert_eq!(t.recovered_pending(), 1);
        assert_eq!(t.snapshot().1[&a], 11);
    }

    #[test]
    fn truncated_entries_stop_before_the_bad_record() {
        let up = tp("day1", 0);
        let mut t = Tracker::default();
        t.track(up.clone(), 0);
        let e = t.begin(&up, 0, 10);
        t.truncate(&e, 4);
        t.seal(&e);
        assert_eq!(t.position(&up), Some(4));
        // Skipped records (never sent) let the position pass at once.
        let e = t.begin(&up, 4, 6);
        t.seal(&e);
        assert_eq!(t.position(&up), Some(6));
    }
}
