//! Proof that every acknowledged message was consumed, once, intact.
//!
//! The producer marks each acknowledged sequence number in a bitset; each
//! consumer group marks what it read, counting duplicates, values that differ
//! from the payload their number selects, and numbers the run never sent.
//! At the end, `missing` = acknowledged and not consumed. A broker that loses
//! or corrupts an acknowledged message cannot produce a clean verdict, and a
//! duplicate (legal under at-least-once delivery) is reported, not hidden.

use serde::Serialize;

/// A growable set of sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; returns false when it was already present.
    pub fn insert(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        if fresh {
            self.len += 1;
        }
        fresh
    }

    /// Whether `seq` is present.
    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// How many numbers are present.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many members of `self` are absent from `other`, and the first few.
    pub fn missing_from(&self, other: &Self, keep: usize) -> (u64, Vec<u64>) {
        let mut count = 0u64;
        let mut first = Vec::new();
        for (i, &w) in self.words.iter().enumerate() {
            let o = other.words.get(i).copied().unwrap_or(0);
            let mut gone = w & !o;
            count += u64::from(gone.count_ones());
            while gone != 0 && first.len() < keep {
                let b = gone.trailing_zeros();
                first.push(i as u64 * 64 + u64::from(b));
                gone &= gone - 1;
            }
        }
        (count, first)
    }
}

/// What one consumer group saw.
#[derive(Debug, Clone, Default)]
pub struct GroupLedger {
    seen: SeqSet,
    duplicates: u64,
    mismatched: u64,
    unknown: u64,
    first_problem: Option<String>,
}

/// The verdict for one consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Messages the producer had acknowledged.
    pub acknowledged: u64,
    /// Distinct sequence numbers consumed.
    pub consumed: u64,
    /// Acknowledged but never consumed.
    pub missing: u64,
    /// The first few missing sequence numbers.
    pub first_missing: Vec<u64>,
    /// Records consumed more than once.
    pub duplicates: u64,
    /// Records whose value differs from the payload their number selects.
    pub mismatched: u64,
    /// Records with a sequence number this run never sent.
    pub unknown: u64,
    /// The first problem seen, naming topic, partition and offset.
    pub first_problem: Option<String>,
    /// True when nothing acknowledged is missing and nothing is corrupt.
    pub complete: bool,
}

impl GroupLedger {
    /// Notes one consumed record. `sent` is how many numbers the run issued;
    /// `content_ok` whether the value matched; `where_` names the record.
    pub fn observe(
        &mut self,
        seq: u64,
        sent: u64,
        content_ok: bool,
        where_: impl FnOnce() -> String,
    ) {
        if seq >= sent {
            self.unknown += 1;
            self.note(|| format!("{}: sequence number {seq} was never sent", where_()));
            return;
        }
        if !content_ok {
            self.mismatched += 1;
            self.note(|| {
                format!(
                    "{}: value of message {seq} differs from what was sent",
                    where_()
                )
            });
        }
        if !self.seen.insert(seq) {
            self.duplicates += 1;
        }
    }

    /// Notes a record that carries no valid bench stamp (`what` names it).
    pub fn foreign(&mut self, what: String) {
        self.unknown += 1;
        self.note(|| what);
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what());
        }
    }

    /// Distinct numbers consumed so far.
    pub fn consumed(&self) -> u64 {
        self.seen.len()
    }

    /// Compares what was consumed with what was acknowledged.
    pub fn verdict(&self, acknowledged: &SeqSet) -> Verdict {
        let (missing, first_missing) = acknowledged.missing_from(&self.seen, 10);
        Verdict {
            acknowledged: acknowledged.len(),
            consumed: self.seen.len(),
            missing,
            first_missing,
            duplicates: self.duplicates,
            mismatched: self.mismatched,
            unknown: self.unknown,
            first_problem: self.first_problem.clone(),
            complete: missing == 0 && self.mismatched == 0 && self.unknown == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(n: u64) -> SeqSet {
        let mut s = SeqSet::default();
        for i in 0..n {
            s.insert(i);
        }
        s
    }

    #[test]
    fn seqset_counts_and_grows() {
        let mut s = SeqSet::default();
        assert!(s.is_empty());
        assert!(s.insert(0));
        assert!(s.insert(1000));
        assert!(!s.insert(1000));
        assert_eq!(s.len(), 2);
        assert!(s.contains(1000) && !s.contains(999) && !s.contains(1_000_000));
    }

    #[test]
    fn complete_when_everything_seen_once() {
        let mut g = GroupLedger::default();
        for i in (0..200).rev() {
            g.observe(i, 200, true, || unreachable!());
        }
        let v = g.verdict(&acked(200));
        assert!(v.complete);
        assert_eq!((v.consumed, v.missing, v.duplicates), (200, 0, 0));
        assert_eq!(v.first_problem, None);
    }

    #[test]
    fn missing_are_counted_and_listed() {
        let mut g = GroupLedger::default();
        for i in 0..130 {
            if i != 5 && i != 64 && i != 129 {
                g.observe(i, 130, true, String::new);
            }
        }
        let v = g.verdict(&acked(130));
        assert!(!v.complete);
        assert_eq!(v.missing, 3);
        assert_eq!(v.first_missing, vec![5, 64, 129]);
    }

    #[test]
    fn unacknowledged_messages_are_not_missing() {
        // Message 2 failed at the producer: not acknowledged, not required.
        let mut ack = SeqSet::default();
        for i in [0, 1, 3] {
            ack.insert(i);
        }
        let mut g = GroupLedger::default();
        for i in [0, 1, 3] {
            g.observe(i, 4, true, String::new);
        }
        assert!(g.verdict(&ack).complete);
    }

    #[test]
    fn duplicates_are_reported_but_not_fatal() {
        let mut g = GroupLedger::default();
        for i in [0, 1, 1, 2, 2, 2] {
            g.observe(i, 3, true, String::new);
        }
        let v = g.verdict(&acked(3));
        assert_eq!(v.duplicates, 3);
        assert!(v.complete);
    }

    #[test]
    fn corrupt_and_unknown_records_fail_the_verdict_and_are_named() {
        let mut g = GroupLedger::default();
        g.observe(0, 2, false, || "topic t partition 0 offset 0".into());
        g.observe(1, 2, true, String::new);
        g.observe(9, 2, true, || "topic t partition 1 offset 7".into());
        let v = g.verdict(&acked(2));
        assert!(!v.complete);
        assert_eq!((v.mismatched, v.unknown, v.missing), (1, 1, 0));
        let p = v.first_problem.unwrap();
        assert!(
            p.contains("partition 0 offset 0") && p.contains("differs"),
            "{p}"
        );
    }

    #[test]
    fn foreign_records_fail_the_verdict() {
        let mut g = GroupLedger::default();
        g.observe(0, 1, true, String::new);
        g.foreign("topic t partition 2 offset 9: header missing".into());
        let v = g.verdict(&acked(1));
        assert!(!v.complete);
        assert_eq!(v.unknown, 1);
        assert!(v.first_problem.unwrap().contains("offset 9"));
    }
}
